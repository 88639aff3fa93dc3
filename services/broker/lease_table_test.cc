#include "services/broker/lease_table.h"

#include <memory>

#include "gtest/gtest.h"
#include "services/broker/fake_clock.h"

namespace pettube::broker {
namespace {

Lease LeaseAt(uint64_t seq, absl::Time deadline, ConsumerId consumer = 1) {
  return Lease{seq, 1, consumer, deadline, HeldEvent()};
}

TEST(LeaseTableTest, ExpiresByDeadlineInOrderAndExtendMovesTheDeadline) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  LeaseTable table;
  table.Add(1, LeaseAt(10, t0 + absl::Seconds(30)));
  table.Add(2, LeaseAt(11, t0 + absl::Seconds(10)));
  table.Add(3, LeaseAt(12, t0 + absl::Seconds(20)));
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.EarliestDeadline(), t0 + absl::Seconds(10));
  EXPECT_TRUE(table.ExpiredBy(t0 + absl::Seconds(10) - absl::Nanoseconds(1)).empty());
  EXPECT_EQ(table.ExpiredBy(t0 + absl::Seconds(20)), (std::vector<LeaseKey>{2, 3}));

  table.Extend(2, t0 + absl::Seconds(40));
  EXPECT_EQ(table.EarliestDeadline(), t0 + absl::Seconds(20));
  EXPECT_EQ(table.ExpiredBy(t0 + absl::Seconds(35)), (std::vector<LeaseKey>{3, 1}));
}

TEST(LeaseTableTest, TakeRemovesTheLeaseAndItsDeadlineAndReturnsTheEvent) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  int64_t held = 0;
  auto stored = std::make_shared<StoredEvent>();
  stored->sequence = 7;
  stored->wire = "0123456789";
  LeaseTable table;
  table.Add(5, Lease{7, 2, 9, t0, HeldEvent(stored, &held)});
  EXPECT_EQ(held, 10);
  ASSERT_NE(table.Find(5), nullptr);
  EXPECT_EQ(table.Find(6), nullptr);
  std::optional<Lease> lease = table.Take(5);
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->seq, 7u);
  EXPECT_EQ(lease->attempt, 2);
  EXPECT_EQ(lease->consumer, 9u);
  EXPECT_EQ(held, 10);  // the event travels with the taken lease
  lease.reset();
  EXPECT_EQ(held, 0);
  EXPECT_FALSE(table.Take(5).has_value());
  EXPECT_TRUE(table.empty());
  EXPECT_FALSE(table.EarliestDeadline().has_value());
  EXPECT_TRUE(table.ExpiredBy(t0 + absl::Hours(1)).empty());
}

TEST(LeaseTableTest, ClearForgetsLeasesAndCancelsTheTimer) {
  FakeClock clock;
  LeaseTable table;
  table.Add(1, LeaseAt(10, clock.Now() + absl::Seconds(1), 4));
  table.Add(2, LeaseAt(11, clock.Now() + absl::Seconds(2), 5));
  EXPECT_EQ(table.Holders().size(), 2u);
  bool fired = false;
  table.expiry_timer().Arm(clock, *table.EarliestDeadline(), [&](uint64_t) { fired = true; });
  EXPECT_EQ(clock.pending(), 1u);
  table.Clear(clock);
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(clock.pending(), 0u);
  clock.Advance(absl::Seconds(5));
  EXPECT_FALSE(fired);
}

}  // namespace
}  // namespace pettube::broker
