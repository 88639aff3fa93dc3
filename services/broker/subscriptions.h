#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker_state.h"
#include "services/broker/stats_watchers.h"

namespace pettube::broker {

// Subscriptions' create, get, list, update and delete (each change durable
// before memory changes, or, for a create, before it is answered), their
// description with stats, and stats watches. Ownership rules are
// BrokerState::MayUseLocked's.
//
// Thread-safe: methods named *Locked need the state's mutex held, the
// others take it.
class Subscriptions {
 public:
  explicit Subscriptions(BrokerState& state) : s_(state) {}

  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

  // The changes answer `done` from the committer thread once durable (or
  // inline when refused up front): no caller's thread waits for a write.
  void CreateSubscription(const std::string& id, const v1::Subscription& settings,
                          const Access& access, Done<v1::Subscription> done)
      ABSL_LOCKS_EXCLUDED(s_.mu);
  void UpdateSubscription(const v1::Subscription& subscription,
                          const std::vector<std::string>& paths, const Access& access,
                          Done<v1::Subscription> done) ABSL_LOCKS_EXCLUDED(s_.mu);
  void DeleteSubscription(const std::string& name, const Access& access,
                          std::function<void(absl::Status)> done) ABSL_LOCKS_EXCLUDED(s_.mu);
  // Reads no store under the lock.
  absl::StatusOr<v1::Subscription> GetSubscription(const std::string& name)
      ABSL_LOCKS_EXCLUDED(s_.mu);
  absl::StatusOr<v1::ListSubscriptionsResponse> ListSubscriptions(int page_size,
                                                                  const std::string& page_token)
      ABSL_LOCKS_EXCLUDED(s_.mu);

  absl::StatusOr<WatchId> WatchStats(const std::string& name, StatsObserver* observer,
                                     v1::SubscriptionStats* initial) ABSL_LOCKS_EXCLUDED(s_.mu);
  void UnwatchStats(WatchId id) ABSL_LOCKS_EXCLUDED(s_.mu);
  absl::StatusOr<v1::SubscriptionStats> GetStats(const std::string& name)
      ABSL_LOCKS_EXCLUDED(s_.mu);

  // Adds a loaded or created subscription to the maps, index and metrics.
  void RegisterLocked(std::unique_ptr<SubState> sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  void UnregisterLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  // The settings with stats now, but for the oldest unacked age, which
  // needs a store read: AddOldestAge adds it, off the lock.
  v1::Subscription DescribeLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  void AddOldestAge(uint32_t sub_id, v1::SubscriptionStats* stats) ABSL_LOCKS_EXCLUDED(s_.mu);

 private:
  BrokerState& s_;
};

}  // namespace pettube::broker
