#include "services/broker/retry_queue.h"

#include <vector>

#include "gtest/gtest.h"
#include "libs/time/proto_time.h"
#include "services/broker/fake_clock.h"

namespace pettube::broker {
namespace {

TEST(RetryQueueTest, TakeDueReturnsOnlyDueEventsHighestSequenceFirst) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  RetryQueue retry;
  retry.Add(t0 + absl::Seconds(2), 5, HeldEvent());
  retry.Add(t0 + absl::Seconds(1), 9, HeldEvent());
  retry.Add(t0 + absl::Seconds(1), 3, HeldEvent());
  retry.Add(t0 + absl::Seconds(3), 1, HeldEvent());
  EXPECT_EQ(retry.EarliestDue(), t0 + absl::Seconds(1));
  EXPECT_TRUE(retry.TakeDue(t0).empty());
  std::vector<uint64_t> seqs;
  for (const ReadyEntry& e : retry.TakeDue(t0 + absl::Seconds(2))) seqs.push_back(e.seq);
  EXPECT_EQ(seqs, (std::vector<uint64_t>{9, 5, 3}));
  EXPECT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry.EarliestDue(), t0 + absl::Seconds(3));
}

TEST(RetryQueueTest, ClearCancelsTheTimer) {
  FakeClock clock;
  RetryQueue retry;
  retry.Add(clock.Now() + absl::Seconds(1), 1, HeldEvent());
  retry.timer().Arm(clock, *retry.EarliestDue(), [](uint64_t) {});
  retry.Clear(clock);
  EXPECT_TRUE(retry.empty());
  EXPECT_EQ(clock.pending(), 0u);
}

TEST(RetryBackoffTest, StaysWithinMinAndTheDoublingCap) {
  v1::RetryPolicy policy;
  *policy.mutable_min_backoff() = time::ToProto(absl::Seconds(1));
  *policy.mutable_max_backoff() = time::ToProto(absl::Seconds(10));
  absl::BitGen rng;
  for (int attempts = 1; attempts <= 8; ++attempts) {
    const absl::Duration cap =
        std::min(absl::Seconds(1) * (1 << (attempts - 1)), absl::Seconds(10));
    for (int i = 0; i < 200; ++i) {
      const absl::Duration d = RetryBackoff(policy, attempts, rng);
      EXPECT_GE(d, absl::Seconds(1));
      EXPECT_LE(d, cap);
    }
  }
}

TEST(RetryBackoffTest, ZeroMinimumMeansRetryAtOnce) {
  v1::RetryPolicy policy;
  *policy.mutable_min_backoff() = time::ToProto(absl::ZeroDuration());
  *policy.mutable_max_backoff() = time::ToProto(absl::ZeroDuration());
  absl::BitGen rng;
  EXPECT_EQ(RetryBackoff(policy, 5, rng), absl::ZeroDuration());
}

}  // namespace
}  // namespace pettube::broker
