#include "libs/time/fake_clock.h"

#include <thread>

#include "gtest/gtest.h"

namespace pettube::time {
namespace {

TEST(FakeClockTest, StandsStillUntilAdvanced) {
  FakeClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
  clock.Advance(-absl::Seconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(105));
}

TEST(FakeClockTest, PassedDeadlineReturnsAtOnce) {
  FakeClock clock;
  absl::Mutex mu;
  bool never = false;
  absl::MutexLock lock(&mu);
  EXPECT_FALSE(clock.AwaitWithDeadline(mu, absl::Condition(&never), clock.Now()));
}

TEST(FakeClockTest, AdvancePastTheDeadlineWakesTheWaiter) {
  FakeClock clock;
  absl::Mutex mu;
  bool never = false;
  bool waiting = false;
  bool returned = false;
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    waiting = true;
    returned =
        !clock.AwaitWithDeadline(mu, absl::Condition(&never), clock.Now() + absl::Seconds(10));
  });
  {
    absl::MutexLock lock(&mu);
    // Inside AwaitWithDeadline the waiter has released mu.
    mu.Await(absl::Condition(&waiting));
  }
  clock.Advance(absl::Seconds(9));
  {
    absl::MutexLock lock(&mu);
    EXPECT_FALSE(returned);
  }
  clock.Advance(absl::Seconds(1));
  waiter.join();
  EXPECT_TRUE(returned);
}

TEST(FakeClockTest, ConditionWakesTheWaiterBeforeTheDeadline) {
  FakeClock clock;
  absl::Mutex mu;
  bool ready = false;
  bool result = false;
  std::thread waiter([&] {
    absl::MutexLock lock(&mu);
    result = clock.AwaitWithDeadline(mu, absl::Condition(&ready), absl::InfiniteFuture());
  });
  {
    absl::MutexLock lock(&mu);
    ready = true;
  }
  waiter.join();
  EXPECT_TRUE(result);
}

TEST(RealClockTest, NowIsTheSystemTime) {
  const absl::Time before = absl::Now();
  const absl::Time now = RealClock().Now();
  EXPECT_GE(now, before);
  EXPECT_LE(now, absl::Now());
}

}  // namespace
}  // namespace pettube::time
