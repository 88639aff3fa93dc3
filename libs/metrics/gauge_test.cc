#include "libs/metrics/gauge.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace pettube::metrics {
namespace {

TEST(GaugeTest, SetReplacesTheValue) {
  Gauge gauge;
  gauge.Set(7);
  gauge.Set(-3.5);
  EXPECT_EQ(gauge.Value(), -3.5);
}

TEST(GaugeTest, IncrementAndDecrementMoveTheValueBothWays) {
  Gauge gauge;
  gauge.Increment();
  gauge.Increment(4);
  gauge.Decrement();
  gauge.Decrement(10);
  EXPECT_EQ(gauge.Value(), -6.0);
}

TEST(GaugeTest, ConcurrentIncrementsAndDecrementsCancelOut) {
  constexpr int kPairs = 4;
  constexpr int kStepsPerThread = 50000;
  Gauge gauge;
  gauge.Set(100);
  std::vector<std::thread> threads;
  for (int t = 0; t < kPairs; ++t) {
    threads.emplace_back([&gauge] {
      for (int i = 0; i < kStepsPerThread; ++i) gauge.Increment();
    });
    threads.emplace_back([&gauge] {
      for (int i = 0; i < kStepsPerThread; ++i) gauge.Decrement();
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(gauge.Value(), 100.0);
}

}  // namespace
}  // namespace pettube::metrics
