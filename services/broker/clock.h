#pragma once

#include <cstdint>
#include <functional>

#include "absl/time/time.h"

namespace pettube::broker {

// The broker's time: what time it is and callbacks at deadlines (lease
// expiry, retry backoff, retention, redrive pacing). TimerQueue is the real
// one (a thread sleeping until the earliest deadline); FakeClock is moved
// by hand in tests, so they check expiry and backoff without sleeping.
//
// Implementations are thread-safe and run callbacks without their own lock
// held, so a callback may schedule or cancel.
class Clock {
 public:
  using TimerId = uint64_t;

  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;
  // Runs `callback` once, at or after `at`.
  virtual TimerId Schedule(absl::Time at, std::function<void()> callback) = 0;
  // Returns false if the timer already fired or was cancelled.
  virtual bool Cancel(TimerId id) = 0;
};

}  // namespace pettube::broker
