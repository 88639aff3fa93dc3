#include "libs/metrics/gauge.h"

#include "libs/metrics/atomic_double.h"

namespace pettube::metrics {

void Gauge::Set(double value) {
  value_.store(value, std::memory_order_relaxed);
}

void Gauge::Increment(double amount) { internal::AtomicAdd(value_, amount); }

void Gauge::Decrement(double amount) { internal::AtomicAdd(value_, -amount); }

double Gauge::Value() const { return value_.load(std::memory_order_relaxed); }

}  // namespace pettube::metrics
