#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pettube::time {

// What time it is, and waiting under a mutex until a condition holds or a
// deadline on that time passes. Code with timers takes a Clock so its tests
// move a FakeClock (fake_clock.h) instead of sleeping.
//
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;

  // As absl::Mutex::AwaitWithDeadline, with `deadline` on this clock: `mu` is
  // held on entry and on return; returns whether `cond` holds. Whoever makes
  // `cond` true must do so under `mu`, as with Mutex::Await.
  virtual bool AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                                 absl::Time deadline) const = 0;
};

// absl::Now and Mutex::AwaitWithDeadline. Lives for the whole process.
const Clock& RealClock();

}  // namespace pettube::time
