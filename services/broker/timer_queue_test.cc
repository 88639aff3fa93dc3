#include "services/broker/timer_queue.h"

#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace pettube::broker {
namespace {

TEST(TimerQueueTest, FiresInDeadlineOrderAndSkipsCancelled) {
  TimerQueue timers;
  absl::Mutex mu;
  std::vector<int> fired;
  absl::Notification last;
  const absl::Time now = absl::Now();
  auto record = [&](int i) {
    absl::MutexLock lock(&mu);
    fired.push_back(i);
  };
  timers.Schedule(now + absl::Milliseconds(30), [&] {
    record(3);
    last.Notify();
  });
  timers.Schedule(now + absl::Milliseconds(10), [&] { record(1); });
  const auto cancelled = timers.Schedule(now + absl::Milliseconds(20), [&] { record(2); });
  EXPECT_TRUE(timers.Cancel(cancelled));
  EXPECT_FALSE(timers.Cancel(cancelled));
  ASSERT_TRUE(last.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
}

TEST(EarliestTimerTest, KeepsOnlyTheEarliestAndIgnoresAFiredPredecessor) {
  TimerQueue timers;
  EarliestTimer earliest;
  absl::Notification fired;
  uint64_t fired_generation = 0;
  absl::Mutex mu;
  auto fire = [&](uint64_t generation) {
    absl::MutexLock lock(&mu);
    earliest.Fired(generation);
    fired_generation = generation;
    fired.Notify();
  };
  {
    absl::MutexLock lock(&mu);
    earliest.Arm(timers, absl::Now() + absl::Hours(1), fire);
    // A later deadline keeps the pending timer; an earlier one replaces it.
    earliest.Arm(timers, absl::Now() + absl::Hours(2), fire);
    EXPECT_EQ(timers.size(), 1u);
    earliest.Arm(timers, absl::Now() + absl::Milliseconds(5), fire);
    EXPECT_EQ(timers.size(), 1u);
  }
  ASSERT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(fired_generation, 2u);
  // Fired cleared it: the next Arm schedules anew even for a late deadline.
  earliest.Arm(timers, absl::Now() + absl::Hours(3), fire);
  EXPECT_EQ(timers.size(), 1u);
  earliest.Cancel(timers);
  EXPECT_EQ(timers.size(), 0u);
}

}  // namespace
}  // namespace pettube::broker
