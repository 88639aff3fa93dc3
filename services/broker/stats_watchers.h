#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace pettube::broker {

// The side of a WatchSubscriptionStats stream the broker notifies.
// Implemented by the gRPC reactor; a fake in tests. Both calls come with the
// broker's lock held: they must not block and must not call back into the
// Broker (the reactor reads the stats later, off the lock).
class StatsObserver {
 public:
  virtual ~StatsObserver() = default;
  // The subscription's backlog or in-flight count changed since the last
  // call (or since the watch began).
  virtual void StatsChanged() = 0;
  // The watch ends: NOT_FOUND when the subscription was deleted, OK when
  // the broker drains. No call follows.
  virtual void Close(const absl::Status& status) = 0;
};

// Handle of one watch.
using WatchId = uint64_t;

// Who watches which subscription's stats, and the counts they last heard
// about: a change is reported once, however often the dispatch loop runs,
// and nothing is reported while nothing changes.
//
// Not thread-safe: the Broker guards it with its own lock.
class StatsWatchers {
 public:
  // Starts watching `subscription` (the broker's internal id) whose counts
  // are now `backlog` and `in_flight`.
  WatchId Add(uint32_t subscription, StatsObserver* observer, int64_t backlog, int64_t in_flight);
  // Stops a watch; unknown ids are ignored. No call reaches the observer
  // afterwards.
  void Remove(WatchId id);

  // Tells the subscription's observers, if its counts differ from those
  // last reported. Cheap when nobody watches.
  void Update(uint32_t subscription, int64_t backlog, int64_t in_flight) {
    if (by_subscription_.empty()) return;
    UpdateWatched(subscription, backlog, in_flight);
  }

  // Ends every watch of `subscription` (deleted) with `status`.
  void CloseSubscription(uint32_t subscription, const absl::Status& status);
  // Ends every watch (the broker drains).
  void CloseAll(const absl::Status& status);

  size_t size() const { return subscription_of_.size(); }

 private:
  struct Watched {
    int64_t backlog = 0;
    int64_t in_flight = 0;
    std::vector<std::pair<WatchId, StatsObserver*>> observers;
  };

  void UpdateWatched(uint32_t subscription, int64_t backlog, int64_t in_flight);

  absl::flat_hash_map<uint32_t, Watched> by_subscription_;
  absl::flat_hash_map<WatchId, uint32_t> subscription_of_;
  WatchId next_id_ = 1;
};

}  // namespace pettube::broker
