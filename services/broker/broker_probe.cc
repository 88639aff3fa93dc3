#include "services/broker/broker_probe.h"

namespace pettube::broker {
namespace {

constexpr char kBacklog[] = "pettube_broker_subscription_backlog";
constexpr char kOldest[] = "pettube_broker_subscription_oldest_unacked_age_seconds";
constexpr char kInFlight[] = "pettube_broker_subscription_in_flight";
constexpr char kConsumers[] = "pettube_broker_subscription_consumers";
constexpr char kDeadLetters[] = "pettube_broker_subscription_dead_letters";

metrics::Counter* SubscriptionCounter(metrics::Registry& registry, const char* name,
                                      const char* help, const metrics::Labels& labels) {
  return &metrics::BuildCounter().Name(name).Help(help).Register(registry).Add(labels);
}

}  // namespace

BrokerProbe::BrokerProbe(metrics::Registry& registry) : registry_(registry) {
  published_ = &metrics::BuildCounter()
                    .Name("pettube_broker_events_published_total")
                    .Help("Events durably appended to the log.")
                    .Register(registry)
                    .Add({});
  duplicates_ = &metrics::BuildCounter()
                     .Name("pettube_broker_events_duplicate_total")
                     .Help("Publishes answered as duplicates (same source+id in the dedup window).")
                     .Register(registry)
                     .Add({});
  rejected_ = &metrics::BuildCounter()
                   .Name("pettube_broker_events_rejected_total")
                   .Help("Published events refused as invalid.")
                   .Register(registry)
                   .Add({});
  commit_seconds_ = &metrics::BuildHistogram()
                         .Name("pettube_broker_commit_seconds")
                         .Help("Latency of one group-commit write (including fsync).")
                         .Register(registry)
                         .Add({}, metrics::ExponentialBuckets(0.00005, 2, 16));
  commit_ops_ = &metrics::BuildHistogram()
                     .Name("pettube_broker_commit_ops")
                     .Help("Operations (publish requests, settlements) grouped per write.")
                     .Register(registry)
                     .Add({}, metrics::ExponentialBuckets(1, 2, 12));
  event_cache_bytes_ = &metrics::BuildGauge()
                            .Name("pettube_broker_event_cache_bytes")
                            .Help("Bytes of recent events held in memory for attached readers.")
                            .Register(registry)
                            .Add({});
}

void BrokerProbe::CommitWritten(size_t ops, absl::Duration latency) {
  commit_seconds_->Observe(absl::ToDoubleSeconds(latency));
  commit_ops_->Observe(static_cast<double>(ops));
}

SubscriptionProbe BrokerProbe::AddSubscription(const std::string& name) {
  const metrics::Labels labels = {{"subscription", name}};
  SubscriptionProbe probe;
  probe.delivered = SubscriptionCounter(registry_, "pettube_broker_subscription_delivered_total",
                                        "Deliveries made, including redeliveries.", labels);
  probe.acked = SubscriptionCounter(registry_, "pettube_broker_subscription_acked_total",
                                    "Events acked.", labels);
  probe.redelivered =
      SubscriptionCounter(registry_, "pettube_broker_subscription_redelivered_total",
                          "Redeliveries (attempt > 1).", labels);
  probe.dead_lettered =
      SubscriptionCounter(registry_, "pettube_broker_subscription_dead_lettered_total",
                          "Events moved to the dead-letter queue.", labels);
  return probe;
}

void BrokerProbe::RemoveSubscription(const std::string& name) {
  const metrics::Labels labels = {{"subscription", name}};
  for (const char* counter :
       {"pettube_broker_subscription_delivered_total", "pettube_broker_subscription_acked_total",
        "pettube_broker_subscription_redelivered_total",
        "pettube_broker_subscription_dead_lettered_total"}) {
    auto& family = metrics::BuildCounter().Name(counter).Register(registry_);
    family.Remove(&family.Add(labels));
  }
  // And the gauges SetGauges set.
  for (const char* gauge : {kBacklog, kOldest, kInFlight, kConsumers, kDeadLetters}) {
    auto& family = metrics::BuildGauge().Name(gauge).Register(registry_);
    family.Remove(&family.Add(labels));
  }
}

void BrokerProbe::SetGauges(
    const std::vector<std::pair<std::string, v1::SubscriptionStats>>& stats) {
  auto& backlog =
      metrics::BuildGauge()
          .Name(kBacklog)
          .Help("Events matched and not yet acked or dead-lettered (autoscaling signal).")
          .Register(registry_);
  auto& oldest = metrics::BuildGauge()
                     .Name(kOldest)
                     .Help("Age of the oldest event the subscription still owes.")
                     .Register(registry_);
  auto& in_flight = metrics::BuildGauge()
                        .Name(kInFlight)
                        .Help("Deliveries leased and not yet settled.")
                        .Register(registry_);
  auto& consumers =
      metrics::BuildGauge().Name(kConsumers).Help("Consumers attached.").Register(registry_);
  auto& dead = metrics::BuildGauge()
                   .Name(kDeadLetters)
                   .Help("Events now in the dead-letter queue.")
                   .Register(registry_);
  for (const auto& [name, s] : stats) {
    const metrics::Labels labels = {{"subscription", name}};
    backlog.Add(labels).Set(static_cast<double>(s.backlog()));
    oldest.Add(labels).Set(static_cast<double>(s.oldest_unacked_age().seconds()) +
                           s.oldest_unacked_age().nanos() / 1e9);
    in_flight.Add(labels).Set(static_cast<double>(s.in_flight()));
    consumers.Add(labels).Set(static_cast<double>(s.consumers()));
    dead.Add(labels).Set(static_cast<double>(s.dead_letter_count()));
  }
}

}  // namespace pettube::broker
