#pragma once

#include <atomic>

namespace pettube::metrics::internal {

// Adds `delta` to `value` without a lock. std::atomic<double>::fetch_add only
// arrives in C++20, so this is the usual compare-exchange loop. Relaxed
// ordering: a metric orders nothing else, it only has to lose no update.
inline void AtomicAdd(std::atomic<double>& value, double delta) {
  double current = value.load(std::memory_order_relaxed);
  while (!value.compare_exchange_weak(current, current + delta,
                                      std::memory_order_relaxed)) {
    // `current` now holds the latest value; retry with it.
  }
}

}  // namespace pettube::metrics::internal
