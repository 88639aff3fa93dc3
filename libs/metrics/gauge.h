#pragma once

#include <atomic>

namespace pettube::metrics {

// A value that goes up and down: in-flight requests, queue depth, bytes on
// disk. Obtain one from a Family<Gauge> (see registry.h); the family owns it.
// For values known only at scrape time, set the gauge from a collect callback
// (Registry::AddCollectCallback).
//
// Thread-safe and lock-free.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double value);
  void Increment(double amount = 1.0);
  void Decrement(double amount = 1.0);
  double Value() const;

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace pettube::metrics
