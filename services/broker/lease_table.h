#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "services/broker/consumer.h"
#include "services/broker/held_event.h"
#include "services/broker/timer_queue.h"

namespace pettube::broker {

// One delivery handed to a consumer and not yet settled.
struct Lease {
  uint64_t seq;
  int attempt;
  ConsumerId consumer;
  absl::Time deadline;
  HeldEvent event;
};

// A subscription's leases in flight, with their deadlines in order and one
// timer for the earliest: a delivery costs a btree insert, not a timer of
// its own.
//
// Not thread-safe: the broker's lock guards it.
class LeaseTable {
 public:
  void Add(LeaseKey key, Lease lease) {
    deadlines_.emplace(lease.deadline, key);
    leases_.emplace(key, std::move(lease));
  }
  // Null if `key` is not in flight.
  Lease* Find(LeaseKey key) {
    auto it = leases_.find(key);
    return it == leases_.end() ? nullptr : &it->second;
  }
  // Removes the lease and returns it; nullopt if `key` is not in flight.
  std::optional<Lease> Take(LeaseKey key) {
    auto it = leases_.find(key);
    if (it == leases_.end()) return std::nullopt;
    deadlines_.erase({it->second.deadline, key});
    std::optional<Lease> out(std::move(it->second));
    leases_.erase(it);
    return out;
  }
  // Moves an in-flight lease's deadline.
  void Extend(LeaseKey key, absl::Time deadline) {
    Lease& lease = leases_.at(key);
    deadlines_.erase({lease.deadline, key});
    lease.deadline = deadline;
    deadlines_.emplace(deadline, key);
  }
  // The leases whose deadline is at or before `now`, earliest first.
  std::vector<LeaseKey> ExpiredBy(absl::Time now) const;
  std::optional<absl::Time> EarliestDeadline() const {
    if (deadlines_.empty()) return std::nullopt;
    return deadlines_.begin()->first;
  }
  // Each lease's key and consumer.
  std::vector<std::pair<LeaseKey, ConsumerId>> Holders() const;
  // Forgets every lease (seek), the timer included.
  void Clear(Clock& clock);

  size_t size() const { return leases_.size(); }
  bool empty() const { return leases_.empty(); }
  // Kept at the earliest deadline by the broker.
  EarliestTimer& expiry_timer() { return expiry_timer_; }

 private:
  absl::flat_hash_map<LeaseKey, Lease> leases_;
  absl::btree_set<std::pair<absl::Time, LeaseKey>> deadlines_;
  EarliestTimer expiry_timer_;
};

}  // namespace pettube::broker
