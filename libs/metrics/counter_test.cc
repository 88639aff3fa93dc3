#include "libs/metrics/counter.h"

#include <cmath>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace pettube::metrics {
namespace {

TEST(CounterTest, StartsAtZero) {
  Counter counter;
  EXPECT_EQ(counter.Value(), 0.0);
}

TEST(CounterTest, IncrementAddsOneByDefault) {
  Counter counter;
  counter.Increment();
  counter.Increment();
  EXPECT_EQ(counter.Value(), 2.0);
}

TEST(CounterTest, IncrementAddsTheGivenAmount) {
  Counter counter;
  counter.Increment(2.5);
  counter.Increment(0.5);
  EXPECT_EQ(counter.Value(), 3.0);
}

TEST(CounterTest, NegativeAndNaNIncrementsAreIgnored) {
  Counter counter;
  counter.Increment(5);
  counter.Increment(-1);
  counter.Increment(std::nan(""));
  EXPECT_EQ(counter.Value(), 5.0);
}

TEST(CounterTest, ConcurrentIncrementsFromSeveralThreadsAreAllCounted) {
  constexpr int kThreads = 4;
  constexpr int kIncrementsPerThread = 100000;
  Counter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&counter] {
      for (int i = 0; i < kIncrementsPerThread; ++i) counter.Increment();
    });
  }
  for (std::thread& thread : threads) thread.join();
  // Integers below 2^53 add exactly in a double, so any lost update shows.
  EXPECT_EQ(counter.Value(), kThreads * kIncrementsPerThread);
}

}  // namespace
}  // namespace pettube::metrics
