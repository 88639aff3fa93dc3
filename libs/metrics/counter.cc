#include "libs/metrics/counter.h"

#include "libs/metrics/atomic_double.h"

namespace pettube::metrics {

void Counter::Increment(double amount) {
  // `!(amount >= 0)` also rejects NaN, which compares false to everything.
  if (!(amount >= 0.0)) return;
  internal::AtomicAdd(value_, amount);
}

double Counter::Value() const { return value_.load(std::memory_order_relaxed); }

}  // namespace pettube::metrics
