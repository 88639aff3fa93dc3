#pragma once

#include <atomic>

namespace pettube::metrics {

// A monotonically increasing value: requests served, bytes written, events
// redelivered. Obtain one from a Family<Counter> (see registry.h); the family
// owns it.
//
// Thread-safe and lock-free: Increment is a compare-exchange loop on an atomic
// double, cheap enough for every request.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `amount`. Negative and NaN amounts are ignored: a counter only goes
  // up, and a rate() over a counter that went down reads as a reset.
  void Increment(double amount = 1.0);

  double Value() const;

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace pettube::metrics
