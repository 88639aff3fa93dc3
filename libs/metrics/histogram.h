#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace pettube::metrics {

// A consistent-enough copy of a histogram's state, for serialization and tests.
struct HistogramSnapshot {
  // Upper bounds (inclusive), ascending. The +Inf bucket is implicit.
  std::vector<double> bucket_boundaries;
  // Observations <= each bound, cumulative as Prometheus exposes them.
  // One longer than `bucket_boundaries`: the last entry is the +Inf bucket
  // and always equals `count`.
  std::vector<uint64_t> cumulative_counts;
  uint64_t count = 0;
  double sum = 0.0;
};

// Counts observations (latencies, sizes) into fixed buckets, plus their sum
// and count, so Prometheus can compute quantiles and averages across replicas.
// Obtain one from a Family<Histogram> (see registry.h); the family owns it.
//
// Thread-safe and lock-free: Observe is a binary search and two atomic adds.
// A snapshot taken during concurrent Observe calls may count an observation
// whose value is not yet in `sum` (or the reverse); bucket counts and `count`
// always agree, since `count` is derived from the buckets.
class Histogram {
 public:
  using BucketBoundaries = std::vector<double>;

  // `boundaries` must be finite and strictly increasing (may be empty: then
  // only the +Inf bucket exists); otherwise the process aborts (see check.h),
  // as bucket layouts are constants in code.
  explicit Histogram(BucketBoundaries boundaries);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Records `value` in the first bucket whose bound is >= value (a value
  // exactly on a bound belongs to that bucket, as `le` means "less or
  // equal"). NaN is ignored: it would turn `sum` into NaN for good.
  void Observe(double value);

  HistogramSnapshot Snapshot() const;

 private:
  const BucketBoundaries boundaries_;
  // Per-bucket (not cumulative) counts, boundaries_.size() + 1 of them, so an
  // observation touches one counter; Snapshot() accumulates.
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0.0};
};

// `count` bounds: start, start*factor, start*factor^2, ..., each rounded to
// 15 significant digits (0.009, not 0.009000000000000001).
// Requires start > 0, factor > 1, count >= 1; otherwise aborts.
Histogram::BucketBoundaries ExponentialBuckets(double start, double factor,
                                               int count);

// Request latency in seconds, 0.5 ms to 10 s: fine enough for in-memory gRPC
// calls, wide enough for uploads and transcodes kicked off synchronously.
Histogram::BucketBoundaries DefaultLatencyBuckets();

}  // namespace pettube::metrics
