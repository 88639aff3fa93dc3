#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/held_event.h"
#include "services/broker/timer_queue.h"

namespace pettube::broker {

// An event owed to a subscription and ready to go (or, null, to be read
// from the store first).
struct ReadyEntry {
  uint64_t seq;
  HeldEvent event;  // null: read from the store
};

// A subscription's events waiting for their backoff to pass, ordered by due
// time, with one timer for the earliest.
//
// Not thread-safe: the broker's lock guards it.
class RetryQueue {
 public:
  void Add(absl::Time due, uint64_t seq, HeldEvent event) {
    waiting_.emplace(std::make_pair(due, seq), std::move(event));
  }
  // Removes the events due at or before `now`, highest sequence first (so
  // pushing each to the front of a ready list leaves the oldest first).
  std::vector<ReadyEntry> TakeDue(absl::Time now);
  std::optional<absl::Time> EarliestDue() const {
    if (waiting_.empty()) return std::nullopt;
    return waiting_.begin()->first.first;
  }
  // Forgets every waiting event (seek), the timer included.
  void Clear(Clock& clock);

  size_t size() const { return waiting_.size(); }
  bool empty() const { return waiting_.empty(); }
  EarliestTimer& timer() { return timer_; }

 private:
  std::map<std::pair<absl::Time, uint64_t>, HeldEvent> waiting_;
  EarliestTimer timer_;
};

// The wait before redelivering after `attempts` failed deliveries:
// exponential from the policy's min_backoff, capped at its max_backoff, with
// full jitter (libs/time's Backoff) drawn from `rng`.
absl::Duration RetryBackoff(const v1::RetryPolicy& policy, int attempts, absl::BitGen& rng);

}  // namespace pettube::broker
