#include "libs/metrics/histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/metrics/atomic_double.h"
#include "libs/metrics/check.h"

namespace pettube::metrics {
namespace {

Histogram::BucketBoundaries CheckedBoundaries(
    Histogram::BucketBoundaries boundaries) {
  for (size_t i = 0; i < boundaries.size(); ++i) {
    if (!std::isfinite(boundaries[i])) {
      internal::Die(absl::StrCat("histogram bucket boundary ", i,
                                 " must be finite; +Inf is implicit"));
    }
    if (i > 0 && !(boundaries[i - 1] < boundaries[i])) {
      internal::Die(absl::StrCat(
          "histogram bucket boundaries must be strictly "
          "increasing; boundary ",
          i, " (", boundaries[i], ") is not above the previous one (",
          boundaries[i - 1], ")"));
    }
  }
  return boundaries;
}

}  // namespace

Histogram::Histogram(BucketBoundaries boundaries)
    : boundaries_(CheckedBoundaries(std::move(boundaries))),
      counts_(new std::atomic<uint64_t>[boundaries_.size() + 1]()) {}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // lower_bound finds the first bound >= value: the `le` bucket. Past the
  // last bound (including +Inf) it returns end(), the +Inf bucket's index.
  const size_t bucket =
      std::lower_bound(boundaries_.begin(), boundaries_.end(), value) -
      boundaries_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  internal::AtomicAdd(sum_, value);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot snapshot;
  snapshot.bucket_boundaries = boundaries_;
  snapshot.cumulative_counts.reserve(boundaries_.size() + 1);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= boundaries_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative_counts.push_back(cumulative);
  }
  snapshot.count = cumulative;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

Histogram::BucketBoundaries ExponentialBuckets(double start, double factor,
                                               int count) {
  if (!(start > 0.0) || !(factor > 1.0) || count < 1) {
    internal::Die(absl::StrCat("ExponentialBuckets(", start, ", ", factor, ", ",
                               count,
                               "): needs start > 0, factor > 1, count >= 1"));
  }
  Histogram::BucketBoundaries boundaries;
  boundaries.reserve(count);
  double bound = start;
  for (int i = 0; i < count; ++i) {
    // Rounded to 15 significant digits, below double's precision, to shed the
    // multiplication's binary noise: le="0.009", not le="0.009000000000000001",
    // since people type these labels into queries.
    char text[32];
    std::snprintf(text, sizeof(text), "%.15g", bound);
    boundaries.push_back(std::strtod(text, nullptr));
    bound *= factor;
  }
  return boundaries;
}

Histogram::BucketBoundaries DefaultLatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
}

}  // namespace pettube::metrics
