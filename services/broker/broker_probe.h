#pragma once

#include <string>
#include <utility>
#include <vector>

#include "libs/metrics/registry.h"
#include "proto/pettube/broker/v1/broker.pb.h"

namespace pettube::broker {

// One subscription's counters (pettube_broker_subscription_*_total).
struct SubscriptionProbe {
  metrics::Counter* delivered = nullptr;
  metrics::Counter* acked = nullptr;
  metrics::Counter* redelivered = nullptr;
  metrics::Counter* dead_lettered = nullptr;
};

// The broker's metrics: publish counters, commit latency and group size,
// each subscription's counters and, at scrape time, its gauges (from stats
// the broker hands over: the probe reads no broker state).
//
// Thread-safe as metrics::Registry is.
class BrokerProbe {
 public:
  explicit BrokerProbe(metrics::Registry& registry);

  void Published() { published_->Increment(); }
  void Duplicate() { duplicates_->Increment(); }
  void Rejected() { rejected_->Increment(); }
  void CommitWritten(size_t ops, absl::Duration latency);

  // The counters of a subscription, made on first use.
  SubscriptionProbe AddSubscription(const std::string& name);
  // Removes every series of a deleted subscription: no stale one stays.
  void RemoveSubscription(const std::string& name);
  // Sets the gauges of each subscription from its stats.
  void SetGauges(const std::vector<std::pair<std::string, v1::SubscriptionStats>>& stats);
  // Bytes of events the cache of recent events holds (part of the budget).
  void SetEventCacheBytes(size_t bytes) { event_cache_bytes_->Set(static_cast<double>(bytes)); }

 private:
  metrics::Registry& registry_;
  metrics::Counter* published_;
  metrics::Counter* duplicates_;
  metrics::Counter* rejected_;
  metrics::Histogram* commit_seconds_;
  metrics::Histogram* commit_ops_;
  metrics::Gauge* event_cache_bytes_;
};

}  // namespace pettube::broker
