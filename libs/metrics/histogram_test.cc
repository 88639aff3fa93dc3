#include "libs/metrics/histogram.h"

#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pettube::metrics {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::Pointwise;

TEST(HistogramTest, ValueExactlyOnABoundaryGoesInThatBucket) {
  Histogram histogram({1, 2, 5});
  histogram.Observe(2);
  EXPECT_THAT(histogram.Snapshot().cumulative_counts, ElementsAre(0, 1, 1, 1));
}

TEST(HistogramTest, CountsAreCumulativeAcrossBuckets) {
  Histogram histogram({1, 2, 5});
  histogram.Observe(0.5);  // le=1
  histogram.Observe(1.5);  // le=2
  histogram.Observe(1.9);  // le=2
  histogram.Observe(4);    // le=5
  EXPECT_THAT(histogram.Snapshot().cumulative_counts, ElementsAre(1, 3, 4, 4));
}

TEST(HistogramTest, ValueAboveTheLastBoundaryGoesOnlyInTheInfBucket) {
  Histogram histogram({1, 2, 5});
  histogram.Observe(5.0001);
  histogram.Observe(std::numeric_limits<double>::infinity());
  EXPECT_THAT(histogram.Snapshot().cumulative_counts, ElementsAre(0, 0, 0, 2));
}

TEST(HistogramTest, NegativeValuesGoInTheFirstBucket) {
  Histogram histogram({1, 2});
  histogram.Observe(-3);
  EXPECT_THAT(histogram.Snapshot().cumulative_counts, ElementsAre(1, 1, 1));
}

TEST(HistogramTest, SumAndCountTrackEveryObservation) {
  Histogram histogram({1, 2, 5});
  histogram.Observe(0.25);
  histogram.Observe(3);
  histogram.Observe(100);
  const HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_EQ(snapshot.count, 3);
  EXPECT_EQ(snapshot.sum, 103.25);
  EXPECT_EQ(snapshot.cumulative_counts.back(), snapshot.count);
}

TEST(HistogramTest, NaNIsIgnored) {
  Histogram histogram({1});
  histogram.Observe(std::nan(""));
  const HistogramSnapshot snapshot = histogram.Snapshot();
  EXPECT_EQ(snapshot.count, 0);
  EXPECT_EQ(snapshot.sum, 0.0);
}

TEST(HistogramTest, EmptyBoundariesLeaveOnlyTheInfBucket) {
  Histogram histogram({});
  histogram.Observe(42);
  EXPECT_THAT(histogram.Snapshot().cumulative_counts, ElementsAre(1));
}

TEST(HistogramTest, SnapshotReportsTheBoundaries) {
  Histogram histogram({0.1, 0.2});
  EXPECT_THAT(histogram.Snapshot().bucket_boundaries, ElementsAre(0.1, 0.2));
}

TEST(HistogramTest, ConcurrentObservationsFromSeveralThreadsAreAllCounted) {
  constexpr int kThreads = 4;
  constexpr int kObservationsPerThread = 50000;
  Histogram histogram({1, 2, 3});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&histogram, t] {
      // Thread t observes t: each thread fills its own bucket.
      for (int i = 0; i < kObservationsPerThread; ++i) histogram.Observe(t);
    });
  }
  for (std::thread& thread : threads) thread.join();
  const HistogramSnapshot snapshot = histogram.Snapshot();
  constexpr uint64_t n = kObservationsPerThread;
  // 0 and 1 both fall in le=1.
  EXPECT_THAT(snapshot.cumulative_counts,
              ElementsAre(2 * n, 3 * n, 4 * n, 4 * n));
  EXPECT_EQ(snapshot.count, kThreads * n);
  EXPECT_EQ(snapshot.sum, (0 + 1 + 2 + 3) * static_cast<double>(n));
}

TEST(HistogramTest, UnsortedBoundariesAbortWithAMessage) {
  EXPECT_DEATH(Histogram({1, 3, 2}), "strictly increasing");
}

TEST(HistogramTest, NonFiniteBoundariesAbortWithAMessage) {
  EXPECT_DEATH(Histogram({1, std::numeric_limits<double>::infinity()}),
               "must be finite");
}

TEST(ExponentialBucketsTest, MultipliesByTheFactor) {
  EXPECT_THAT(ExponentialBuckets(0.5, 2, 4),
              Pointwise(DoubleEq(), {0.5, 1.0, 2.0, 4.0}));
}

TEST(ExponentialBucketsTest, BoundsCarryNoFloatingPointNoise) {
  // 0.001 * 3 * 3 is 0.009000000000000001 in binary floating point.
  EXPECT_THAT(ExponentialBuckets(0.001, 3, 4),
              ElementsAre(0.001, 0.003, 0.009, 0.027));
}

TEST(ExponentialBucketsTest, InvalidArgumentsAbortWithAMessage) {
  EXPECT_DEATH(ExponentialBuckets(0, 2, 3), "start > 0");
  EXPECT_DEATH(ExponentialBuckets(1, 1, 3), "factor > 1");
  EXPECT_DEATH(ExponentialBuckets(1, 2, 0), "count >= 1");
}

TEST(DefaultLatencyBucketsTest, SpanHalfAMillisecondToTenSeconds) {
  const Histogram::BucketBoundaries buckets = DefaultLatencyBuckets();
  ASSERT_FALSE(buckets.empty());
  EXPECT_EQ(buckets.front(), 0.0005);
  EXPECT_EQ(buckets.back(), 10.0);
  // Usable as they are: the constructor would abort otherwise.
  Histogram histogram(buckets);
  EXPECT_EQ(histogram.Snapshot().cumulative_counts.size(), buckets.size() + 1);
}

}  // namespace
}  // namespace pettube::metrics
