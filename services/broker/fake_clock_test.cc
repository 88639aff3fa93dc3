#include "services/broker/fake_clock.h"

#include <vector>

#include "gtest/gtest.h"
#include "services/broker/timer_queue.h"

namespace pettube::broker {
namespace {

TEST(FakeClockTest, AdvanceRunsDueTimersInOrderAtTheirDeadlines) {
  FakeClock clock;
  const absl::Time start = clock.Now();
  std::vector<std::pair<int, absl::Time>> fired;
  clock.Schedule(start + absl::Seconds(3), [&] { fired.push_back({3, clock.Now()}); });
  clock.Schedule(start + absl::Seconds(1), [&] { fired.push_back({1, clock.Now()}); });
  const auto cancelled = clock.Schedule(start + absl::Seconds(2), [&] {
    fired.push_back({2, {}});
  });
  EXPECT_TRUE(clock.Cancel(cancelled));
  EXPECT_FALSE(clock.Cancel(cancelled));

  clock.Advance(absl::Milliseconds(999));
  EXPECT_TRUE(fired.empty());
  clock.Advance(absl::Seconds(5));
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0], std::make_pair(1, start + absl::Seconds(1)));
  EXPECT_EQ(fired[1], std::make_pair(3, start + absl::Seconds(3)));
  EXPECT_EQ(clock.Now(), start + absl::Milliseconds(5999));
  EXPECT_EQ(clock.pending(), 0u);
}

TEST(FakeClockTest, ATimerScheduledByACallbackRunsInTheSameAdvanceIfDue) {
  FakeClock clock;
  int runs = 0;
  std::function<void()> again = [&] {
    if (++runs < 3) clock.Schedule(clock.Now() + absl::Seconds(1), again);
  };
  clock.Schedule(clock.Now() + absl::Seconds(1), again);
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(runs, 2);
  ASSERT_TRUE(clock.NextDeadline().has_value());
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(runs, 3);
  EXPECT_FALSE(clock.NextDeadline().has_value());
}

TEST(FakeClockTest, EarliestTimerWorksOverAnyClock) {
  FakeClock clock;
  EarliestTimer earliest;
  uint64_t fired_generation = 0;
  auto fire = [&](uint64_t generation) {
    earliest.Fired(generation);
    fired_generation = generation;
  };
  earliest.Arm(clock, clock.Now() + absl::Hours(1), fire);
  earliest.Arm(clock, clock.Now() + absl::Hours(2), fire);    // later: kept
  earliest.Arm(clock, clock.Now() + absl::Minutes(1), fire);  // earlier: replaces
  EXPECT_EQ(clock.pending(), 1u);
  clock.Advance(absl::Minutes(1));
  EXPECT_EQ(fired_generation, 2u);
  EXPECT_EQ(clock.pending(), 0u);
}

}  // namespace
}  // namespace pettube::broker
