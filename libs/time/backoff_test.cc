#include "libs/time/backoff.h"

#include <vector>

#include "gtest/gtest.h"

namespace pettube::time {
namespace {

BackoffPolicy Policy(Jitter jitter) {
  BackoffPolicy policy;
  policy.initial = absl::Milliseconds(100);
  policy.max = absl::Seconds(1);
  policy.jitter = jitter;
  return policy;
}

TEST(BackoffCeilingTest, DoublesFromInitialUpToTheCap) {
  const BackoffPolicy policy = Policy(Jitter::kNone);
  EXPECT_EQ(BackoffCeiling(policy, 1), absl::Milliseconds(100));
  EXPECT_EQ(BackoffCeiling(policy, 2), absl::Milliseconds(200));
  EXPECT_EQ(BackoffCeiling(policy, 3), absl::Milliseconds(400));
  EXPECT_EQ(BackoffCeiling(policy, 4), absl::Milliseconds(800));
  EXPECT_EQ(BackoffCeiling(policy, 5), absl::Seconds(1));
  EXPECT_EQ(BackoffCeiling(policy, 1 << 30), absl::Seconds(1));
}

TEST(BackoffCeilingTest, AttemptsBelowOneCountAsOne) {
  EXPECT_EQ(BackoffCeiling(Policy(Jitter::kNone), 0), absl::Milliseconds(100));
  EXPECT_EQ(BackoffCeiling(Policy(Jitter::kNone), -7), absl::Milliseconds(100));
}

TEST(BackoffCeilingTest, MaxBelowInitialActsAsInitial) {
  BackoffPolicy policy = Policy(Jitter::kNone);
  policy.max = absl::Milliseconds(10);
  EXPECT_EQ(BackoffCeiling(policy, 1), absl::Milliseconds(100));
  EXPECT_EQ(BackoffCeiling(policy, 9), absl::Milliseconds(100));
}

TEST(BackoffDelayTest, NoJitterIsTheCeiling) {
  EXPECT_EQ(BackoffDelay(Policy(Jitter::kNone), 3, 0.0), absl::Milliseconds(400));
  EXPECT_EQ(BackoffDelay(Policy(Jitter::kNone), 3, 0.7), absl::Milliseconds(400));
}

TEST(BackoffDelayTest, EqualJitterSpansTheUpperHalf) {
  const BackoffPolicy policy = Policy(Jitter::kEqual);
  EXPECT_EQ(BackoffDelay(policy, 3, 0.0), absl::Milliseconds(200));
  EXPECT_EQ(BackoffDelay(policy, 3, 0.5), absl::Milliseconds(300));
  EXPECT_EQ(BackoffDelay(policy, 3, 1.0), absl::Milliseconds(400));
}

TEST(BackoffDelayTest, FullJitterSpansUpToTheCeilingButNeverBelowInitial) {
  const BackoffPolicy policy = Policy(Jitter::kFull);
  EXPECT_EQ(BackoffDelay(policy, 3, 0.0), absl::Milliseconds(100));
  EXPECT_EQ(BackoffDelay(policy, 3, 0.1), absl::Milliseconds(100));
  EXPECT_EQ(BackoffDelay(policy, 3, 0.5), absl::Milliseconds(200));
  EXPECT_EQ(BackoffDelay(policy, 3, 1.0), absl::Milliseconds(400));
  EXPECT_EQ(BackoffDelay(policy, 9, 1.0), absl::Seconds(1));
}

TEST(BackoffDelayTest, FractionOutsideZeroOneIsClamped) {
  const BackoffPolicy policy = Policy(Jitter::kEqual);
  EXPECT_EQ(BackoffDelay(policy, 1, -3.0), absl::Milliseconds(50));
  EXPECT_EQ(BackoffDelay(policy, 1, 42.0), absl::Milliseconds(100));
}

TEST(BackoffTest, DrawsFromTheInjectedSource) {
  std::vector<double> draws = {0.0, 1.0, 0.5};
  size_t next = 0;
  Backoff backoff(Policy(Jitter::kEqual), [&] { return draws[next++]; });
  EXPECT_EQ(backoff.Delay(1), absl::Milliseconds(50));
  EXPECT_EQ(backoff.Delay(2), absl::Milliseconds(200));
  EXPECT_EQ(backoff.Delay(3), absl::Milliseconds(300));
  EXPECT_EQ(next, 3u);
}

TEST(BackoffTest, DefaultSourceStaysWithinTheJitterBounds) {
  Backoff backoff(Policy(Jitter::kEqual));
  bool varied = false;
  const absl::Duration first = backoff.Delay(4);
  for (int i = 0; i < 1000; ++i) {
    const absl::Duration d = backoff.Delay(4);
    ASSERT_GE(d, absl::Milliseconds(400));
    ASSERT_LE(d, absl::Milliseconds(800));
    varied = varied || d != first;
  }
  // 1000 equal draws from a real generator would mean it is not random at all.
  EXPECT_TRUE(varied);
}

}  // namespace
}  // namespace pettube::time
