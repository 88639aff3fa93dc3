#include "services/broker/broker.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "libs/time/proto_time.h"
#include "services/broker/broker_state.h"
#include "services/broker/committer.h"
#include "services/broker/dead_letters.h"
#include "services/broker/dispatcher.h"
#include "services/broker/event_validation.h"
#include "services/broker/publish_pipeline.h"
#include "services/broker/redriver.h"
#include "services/broker/retention.h"
#include "services/broker/retrier.h"
#include "services/broker/seeker.h"
#include "services/broker/serial_worker.h"
#include "services/broker/settler.h"
#include "services/broker/subscriptions.h"
#include "services/broker/timer_queue.h"

namespace pettube::broker {

v1::Status ToProtoStatus(const absl::Status& status) {
  v1::Status out;
  out.set_code(static_cast<int>(status.code()));
  out.set_message(std::string(status.message()));
  return out;
}

namespace {

// Starts an operation that answers a callback, and waits for the answer:
// the waiting forms of the broker's calls (tests, tools), over the ones
// BrokerService uses.
template <typename R, typename Start>
R Await(Start start) {
  absl::Notification answered;
  std::optional<R> out;
  start([&](R r) {
    out.emplace(std::move(r));
    answered.Notify();
  });
  answered.WaitForNotification();
  return *std::move(out);
}

}  // namespace

struct Broker::CollectHook {
  absl::Mutex mu;
  Broker* broker ABSL_GUARDED_BY(mu);
};

// ----------------------------------------------------------------- set-up

Broker::Broker(BrokerStore* store, Options options, metrics::Registry* registry)
    : state_(std::make_unique<BrokerState>(store, options, *registry)) {
  BrokerState& s = *state_;
  dispatcher_ = std::make_unique<Dispatcher>(s);
  settler_ = std::make_unique<Settler>(s);
  retrier_ = std::make_unique<Retrier>(s);
  dead_letters_ = std::make_unique<DeadLetters>(s);
  redriver_ = std::make_unique<Redriver>(s);
  subscriptions_ = std::make_unique<Subscriptions>(s);
  seeker_ = std::make_unique<Seeker>(s);
  retention_ = std::make_unique<Retention>(s);
  publisher_ = std::make_unique<PublishPipeline>(s);
  s.parts.dispatcher = dispatcher_.get();
  s.parts.settler = settler_.get();
  s.parts.retrier = retrier_.get();
  s.parts.dead_letters = dead_letters_.get();
  s.parts.subscriptions = subscriptions_.get();
  s.parts.seeker = seeker_.get();
  s.parts.retention = retention_.get();
}

absl::StatusOr<std::unique_ptr<Broker>> Broker::Open(BrokerStore* store, Options options,
                                                     metrics::Registry* registry) {
  std::unique_ptr<Broker> broker(new Broker(store, options, registry));
  if (auto s = broker->Load(); !s.ok()) return s;
  BrokerState& state = *broker->state_;
  if (options.clock == nullptr) broker->own_timers_ = std::make_unique<TimerQueue>();
  state.clock = options.clock != nullptr ? options.clock : broker->own_timers_.get();
  broker->reader_ = std::make_unique<SerialWorker>();
  state.reader = broker->reader_.get();
  BrokerProbe* probe = &state.probe;
  broker->committer_ = std::make_unique<Committer>(
      *store, options.sync,
      [probe](size_t ops, size_t, absl::Duration latency) { probe->CommitWritten(ops, latency); });
  state.committer = broker->committer_.get();
  broker->collect_hook_ = std::make_shared<CollectHook>();
  {
    absl::MutexLock lock(&broker->collect_hook_->mu);
    broker->collect_hook_->broker = broker.get();
  }
  broker->EnforceRetention();
  registry->AddCollectCallback([hook = broker->collect_hook_] {
    absl::MutexLock lock(&hook->mu);
    if (hook->broker != nullptr) hook->broker->CollectMetrics();
  });
  return broker;
}

Broker::~Broker() {
  if (collect_hook_ != nullptr) {
    absl::MutexLock lock(&collect_hook_->mu);
    collect_hook_->broker = nullptr;
  }
  Drain();              // from here timers are neither armed nor acted on
  reader_.reset();      // a refill in progress finishes first
  CancelTimers();       // a clock the broker does not own may outlive it
  own_timers_.reset();  // before the committer: a firing timer may submit
  committer_.reset();   // commits what is queued
}

void Broker::CancelTimers() {
  BrokerState& s = *state_;
  if (s.clock == nullptr) return;  // never opened
  absl::MutexLock lock(&s.mu);
  for (auto& [id, sub] : s.subs) {
    sub->leases.expiry_timer().Cancel(*s.clock);
    sub->retry.timer().Cancel(*s.clock);
  }
  retention_->CancelLocked();
}

absl::Status Broker::Load() {
  BrokerState& s = *state_;
  auto last = s.store->LastSequence();
  if (!last.ok()) return last.status();
  s.last_seq = *last;
  s.durable_seq = *last;
  auto next_id = s.store->NextSubscriptionId();
  if (!next_id.ok()) return next_id.status();
  s.next_sub_id = *next_id;
  auto records = s.store->LoadSubscriptions();
  if (!records.ok()) return records.status();
  absl::MutexLock lock(&s.mu);
  for (const storage::SubscriptionRecord& r : *records) {
    auto sub = std::make_unique<SubState>();
    sub->id = r.internal_id();
    sub->config = r.subscription();
    sub->owner = r.owner();
    // Everything below the ack floor is settled: loading starts there.
    sub->load_cursor = s.store->AckFloor(sub->id);
    sub->epochs->floor_written = sub->load_cursor;
    auto backlog = s.store->CountQueue(sub->id);
    if (!backlog.ok()) return backlog.status();
    sub->backlog = *backlog;
    auto dead = s.store->CountDeadLetters(sub->id);
    if (!dead.ok()) return dead.status();
    sub->dead_count = *dead;
    SubState* raw = sub.get();
    auto loaded =
        s.store->LoadPending(sub->id, [raw](uint64_t seq, const storage::PendingRecord& p) {
          auto& a = raw->attempts[seq];
          a.attempts = p.attempts();
          a.last_error = p.last_error();
          a.persisted = true;
          a.owed_copy = !p.event().empty();
          if (p.has_first_delivery_time())
            a.first_delivery = time::FromProto(p.first_delivery_time());
        });
    if (!loaded.ok()) return loaded;
    subscriptions_->RegisterLocked(std::move(sub));
  }
  return absl::OkStatus();
}

size_t Broker::max_response_bytes() const { return state_->options.max_response_bytes; }

// ----------------------------------------------------------- the front

void Broker::Publish(std::vector<CloudEvent> events, PublishDone done, const Access& access) {
  publisher_->Publish(std::move(events), std::move(done), access);
}

absl::StatusOr<v1::StreamInfo> Broker::GetStreamInfo() { return publisher_->GetStreamInfo(); }

absl::StatusOr<v1::Subscription> Broker::CreateSubscription(const std::string& id,
                                                            const v1::Subscription& settings,
                                                            const Access& access) {
  return Await<absl::StatusOr<v1::Subscription>>(
      [&](auto done) { CreateSubscription(id, settings, access, std::move(done)); });
}

absl::StatusOr<v1::Subscription> Broker::GetSubscription(const std::string& name) {
  return subscriptions_->GetSubscription(name);
}

absl::StatusOr<v1::ListSubscriptionsResponse> Broker::ListSubscriptions(
    int page_size, const std::string& page_token) {
  return subscriptions_->ListSubscriptions(page_size, page_token);
}

absl::StatusOr<v1::Subscription> Broker::UpdateSubscription(const v1::Subscription& subscription,
                                                            const std::vector<std::string>& paths,
                                                            const Access& access) {
  return Await<absl::StatusOr<v1::Subscription>>(
      [&](auto done) { UpdateSubscription(subscription, paths, access, std::move(done)); });
}

absl::Status Broker::DeleteSubscription(const std::string& name, const Access& access) {
  return Await<absl::Status>([&](auto done) { DeleteSubscription(name, access, std::move(done)); });
}

absl::StatusOr<v1::Subscription> Broker::Seek(const std::string& name,
                                              const v1::StartPosition& position,
                                              const Access& access) {
  return Await<absl::StatusOr<v1::Subscription>>(
      [&](auto done) { Seek(name, position, access, std::move(done)); });
}

absl::StatusOr<v1::ListDeadLettersResponse> Broker::ListDeadLetters(const std::string& name,
                                                                    int page_size,
                                                                    const std::string& page_token,
                                                                    const Access& access) {
  return Await<absl::StatusOr<v1::ListDeadLettersResponse>>(
      [&](auto done) { ListDeadLetters(name, page_size, page_token, access, std::move(done)); });
}

absl::StatusOr<int64_t> Broker::Redrive(const std::string& name, int64_t max_events,
                                        int max_per_second, const Access& access) {
  return Await<absl::StatusOr<int64_t>>(
      [&](auto done) { Redrive(name, max_events, max_per_second, access, std::move(done)); });
}

void Broker::CreateSubscription(const std::string& id, const v1::Subscription& settings,
                                const Access& access, Done<v1::Subscription> done) {
  subscriptions_->CreateSubscription(id, settings, access, std::move(done));
}

void Broker::UpdateSubscription(const v1::Subscription& subscription,
                                const std::vector<std::string>& paths, const Access& access,
                                Done<v1::Subscription> done) {
  subscriptions_->UpdateSubscription(subscription, paths, access, std::move(done));
}

void Broker::DeleteSubscription(const std::string& name, const Access& access,
                                std::function<void(absl::Status)> done) {
  subscriptions_->DeleteSubscription(name, access, std::move(done));
}

void Broker::Seek(const std::string& name, const v1::StartPosition& position, const Access& access,
                  Done<v1::Subscription> done) {
  seeker_->Seek(name, position, access, std::move(done));
}

void Broker::ListDeadLetters(const std::string& name, int page_size, const std::string& page_token,
                             const Access& access, Done<v1::ListDeadLettersResponse> done) {
  dead_letters_->List(name, page_size, page_token, access, std::move(done));
}

void Broker::Redrive(const std::string& name, int64_t max_events, int max_per_second,
                     const Access& access, Done<int64_t> done) {
  redriver_->Redrive(name, max_events, max_per_second, access, std::move(done));
}

absl::StatusOr<WatchId> Broker::WatchStats(const std::string& name, StatsObserver* observer,
                                           v1::SubscriptionStats* initial) {
  return subscriptions_->WatchStats(name, observer, initial);
}

void Broker::UnwatchStats(WatchId id) { subscriptions_->UnwatchStats(id); }

absl::StatusOr<v1::SubscriptionStats> Broker::GetStats(const std::string& name) {
  return subscriptions_->GetStats(name);
}

absl::StatusOr<ConsumerId> Broker::Attach(const std::string& subscription, int credits,
                                          const std::string& consumer_name, Consumer* consumer,
                                          v1::Subscription* settings, const Access& access) {
  if (auto s = ValidateName(subscription, "attach.subscription"); !s.ok()) return s;
  if (credits < 1 || credits > kMaxCredits) {
    return absl::InvalidArgumentError(
        absl::StrCat("attach.max_in_flight: must be 1 to ", kMaxCredits, ", got ", credits));
  }
  BrokerState& s = *state_;
  ConsumerId id;
  uint32_t sub_id;
  {
    absl::MutexLock lock(&s.mu);
    if (s.draining) return absl::UnavailableError("broker is shutting down");
    SubState* sub = s.FindLocked(subscription);
    if (sub == nullptr) {
      return absl::NotFoundError(absl::StrCat("subscription ", subscription, " does not exist"));
    }
    if (auto st = s.MayUseLocked(*sub, access); !st.ok()) return st;
    id = dispatcher_->AttachLocked(*sub, credits, consumer_name, consumer);
    *settings = subscriptions_->DescribeLocked(*sub);
    sub_id = sub->id;
    dispatcher_->PumpLocked(*sub);
  }
  subscriptions_->AddOldestAge(sub_id, settings->mutable_stats());
  return id;
}

void Broker::Detach(ConsumerId id, const std::vector<std::string>& unsent) {
  dispatcher_->Detach(id, unsent);
}

absl::Status Broker::AddCredits(ConsumerId id, int credits) {
  return dispatcher_->AddCredits(id, credits, kMaxCredits);
}

void Broker::Settle(ConsumerId id, const v1::Settle& settle, bool confirm) {
  settler_->Settle(id, settle, confirm);
}

void Broker::Drain() {
  BrokerState& s = *state_;
  std::vector<std::function<void()>> redrives;
  {
    absl::MutexLock lock(&s.mu);
    if (s.draining) return;
    s.draining = true;
    for (auto& [id, sub] : s.subs) {
      dispatcher_->CloseConsumersLocked(
          *sub, absl::UnavailableError("broker is shutting down; reconnect"));
    }
    // Watchers end cleanly: the stats they hold are final for this instance.
    s.watchers.CloseAll(absl::OkStatus());
    redrives = redriver_->DrainLocked();
  }
  // Redrives waiting for their next chunk answer with what they moved.
  for (auto& answer : redrives) answer();
}

void Broker::EnforceRetention() { retention_->Enforce(); }

size_t Broker::EventCacheBytes() {
  absl::MutexLock lock(&state_->mu);
  return state_->recent.bytes();
}

void Broker::CollectMetrics() {
  std::vector<std::pair<std::string, v1::SubscriptionStats>> stats;
  std::vector<uint32_t> ids;
  {
    BrokerState& s = *state_;
    absl::MutexLock lock(&s.mu);
    s.probe.SetEventCacheBytes(s.recent.bytes());
    stats.reserve(s.subs.size());
    for (auto& [id, sub] : s.subs) {
      stats.emplace_back(sub->config.name(), subscriptions_->DescribeLocked(*sub).stats());
      ids.push_back(id);
    }
  }
  // The oldest ages read the store: off the lock, so a scrape never holds
  // up dispatch.
  for (size_t i = 0; i < ids.size(); ++i) subscriptions_->AddOldestAge(ids[i], &stats[i].second);
  state_->probe.SetGauges(stats);
}

}  // namespace pettube::broker
