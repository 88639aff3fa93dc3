#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/broker/clock.h"

namespace pettube::broker {

// Real deadlines only (lease expiry, retry backoff, retention): one ordered
// set, one thread that sleeps until the earliest deadline or until an
// earlier one is scheduled. An idle broker has nothing scheduled and this
// thread sleeps without waking.
//
// The real Clock: Now() is absl::Now().
//
// Thread-safe. Callbacks run on the timer thread, without the timer's lock
// held, so they may schedule or cancel.
class TimerQueue : public Clock {
 public:
  TimerQueue();
  ~TimerQueue() override;  // Stops the thread; pending callbacks are dropped.

  absl::Time Now() const override;
  TimerId Schedule(absl::Time at, std::function<void()> callback) ABSL_LOCKS_EXCLUDED(mu_) override;
  bool Cancel(TimerId id) ABSL_LOCKS_EXCLUDED(mu_) override;
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::pair<absl::Time, TimerId>, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TimerId, absl::Time> deadline_of_ ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Bumped whenever the earliest deadline may have moved earlier.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// One timer kept at the earliest of a changing set of deadlines (a
// subscription's lease expiries, its retries): Arm with the set's earliest
// whenever it may have moved earlier; the callback calls Fired first.
// A timer that fired while being replaced never clears its successor.
// Not thread-safe: the owner's lock guards it.
class EarliestTimer {
 public:
  // Schedules `fire(generation)` at `at`, unless a timer due no later is
  // already pending.
  void Arm(Clock& timers, absl::Time at, std::function<void(uint64_t generation)> fire);
  // The timer with `generation` ran: forget it if it is still the current one.
  void Fired(uint64_t generation) {
    if (generation == generation_) id_.reset();
  }
  void Cancel(Clock& timers);

 private:
  std::optional<Clock::TimerId> id_;
  absl::Time at_;
  uint64_t generation_ = 0;
};

}  // namespace pettube::broker
