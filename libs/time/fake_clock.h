#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/time/clock.h"

namespace pettube::time {

// A Clock that stands still until a test moves it. Advance wakes every
// AwaitWithDeadline whose deadline it passes, so a test checks timers in
// microseconds of wall time and without sleeping.
//
// Thread-safe. Advance must not run while the mutex of a waiter is being
// destroyed (tests advance and destroy from the same thread).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000));

  absl::Time Now() const override;
  bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                         absl::Time deadline) const override ABSL_LOCKS_EXCLUDED(waiters_mu_);

  // Moves time forward by `d` (negative counts as 0) and wakes the waiters.
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(waiters_mu_);

 private:
  // Nanoseconds since the Unix epoch: read by waiters' conditions under their
  // own mutex, so not guarded by waiters_mu_.
  std::atomic<int64_t> now_ns_;
  mutable absl::Mutex waiters_mu_;
  // The mutexes of calls inside AwaitWithDeadline, one entry per call.
  mutable std::vector<absl::Mutex*> waiters_ ABSL_GUARDED_BY(waiters_mu_);
};

}  // namespace pettube::time
