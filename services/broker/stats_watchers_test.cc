#include "services/broker/stats_watchers.h"

#include <optional>

#include "gtest/gtest.h"

namespace pettube::broker {
namespace {

class CountingObserver : public StatsObserver {
 public:
  void StatsChanged() override { ++changes; }
  void Close(const absl::Status& status) override { closed = status; }
  int changes = 0;
  std::optional<absl::Status> closed;
};

TEST(StatsWatchersTest, ReportsAChangeOnceAndNothingWhileNothingChanges) {
  StatsWatchers watchers;
  CountingObserver a;
  watchers.Add(7, &a, /*backlog=*/3, /*in_flight=*/0);
  watchers.Update(7, 3, 0);
  EXPECT_EQ(a.changes, 0);
  watchers.Update(7, 3, 1);
  watchers.Update(7, 3, 1);
  watchers.Update(7, 3, 1);
  EXPECT_EQ(a.changes, 1);
  watchers.Update(7, 2, 1);
  EXPECT_EQ(a.changes, 2);
  // Another subscription's changes are not ours.
  watchers.Update(8, 100, 100);
  EXPECT_EQ(a.changes, 2);
}

TEST(StatsWatchersTest, RemovedObserverHearsNothing) {
  StatsWatchers watchers;
  CountingObserver a, b;
  const WatchId ia = watchers.Add(1, &a, 0, 0);
  watchers.Add(1, &b, 0, 0);
  watchers.Remove(ia);
  watchers.Remove(ia);  // twice is harmless
  watchers.Update(1, 5, 0);
  EXPECT_EQ(a.changes, 0);
  EXPECT_EQ(b.changes, 1);
  EXPECT_EQ(watchers.size(), 1u);
}

TEST(StatsWatchersTest, ClosingASubscriptionEndsOnlyItsWatches) {
  StatsWatchers watchers;
  CountingObserver a, b;
  watchers.Add(1, &a, 0, 0);
  const WatchId ib = watchers.Add(2, &b, 0, 0);
  watchers.CloseSubscription(1, absl::NotFoundError("deleted"));
  ASSERT_TRUE(a.closed.has_value());
  EXPECT_EQ(a.closed->code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(b.closed.has_value());
  watchers.Update(1, 9, 9);
  EXPECT_EQ(a.changes, 0);
  watchers.CloseAll(absl::OkStatus());
  ASSERT_TRUE(b.closed.has_value());
  EXPECT_TRUE(b.closed->ok());
  watchers.Remove(ib);  // after close: ignored
  EXPECT_EQ(watchers.size(), 0u);
}

}  // namespace
}  // namespace pettube::broker
