// Bounded resources in the broker core: a subscription's events in memory
// stay within its byte budget (backpressure, never growth), long-delayed
// nacks hold no events, and deliveries that never left the broker do not
// count as attempts.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/broker/broker_test_util.h"

namespace pettube::broker {
namespace {

using LimitsTest = BrokerTest;

std::vector<CloudEvent> BigEvents(int n, const std::string& prefix) {
  std::vector<CloudEvent> out;
  for (int i = 0; i < n; ++i) {
    CloudEvent e = Event(absl::StrCat(prefix, i));
    e.set_text_data(std::string(3000, 'x'));
    out.push_back(std::move(e));
  }
  return out;
}

TEST_F(LimitsTest, ASubscriptionHoldsAtMostItsByteBudgetAndCatchesUpAsAcksFreeRoom) {
  Broker::Options options = DefaultOptions();
  options.max_subscription_bytes = 30000;  // about ten 3 KB events
  Reopen(options);
  Create("q");
  Publish(BigEvents(50, "e"));
  FakeConsumer& c = NewConsumer();
  const ConsumerId id = Attach("q", &c, /*credits=*/1000);
  std::set<std::string> seen;
  size_t handled = 0;
  while (seen.size() < 50) {
    std::vector<v1::Delivery> got = c.WaitForDeliveries(handled + 1, absl::Seconds(5));
    ASSERT_GT(got.size(), handled) << "stalled after " << seen.size();
    // Never more than the budget's worth in flight (plus the one that
    // crossed it).
    EXPECT_LE(got.size() - handled, 11u);
    std::vector<std::string> leases;
    for (size_t i = handled; i < got.size(); ++i) {
      seen.insert(got[i].event().id());
      leases.push_back(got[i].lease_id());
    }
    handled = got.size();
    broker_->Settle(id, Acks(leases), false);
  }
  EXPECT_EQ(seen.size(), 50u);
  EXPECT_EQ(Backlog("q"), 0);
  broker_->Detach(id);
}

TEST_F(LimitsTest, NackingEverythingWithALongDelayDoesNotStallTheRest) {
  Broker::Options options = DefaultOptions();
  options.max_subscription_bytes = 30000;
  Reopen(options);
  Create("q");
  Publish(BigEvents(50, "n"));
  FakeConsumer& c = NewConsumer();
  const ConsumerId id = Attach("q", &c, /*credits=*/1000);
  std::set<std::string> seen;
  size_t handled = 0;
  while (seen.size() < 50) {
    std::vector<v1::Delivery> got = c.WaitForDeliveries(handled + 1, absl::Seconds(5));
    ASSERT_GT(got.size(), handled) << "stalled after " << seen.size();
    v1::Settle settle;
    for (size_t i = handled; i < got.size(); ++i) {
      EXPECT_TRUE(seen.insert(got[i].event().id()).second) << "delivered twice";
      v1::Nack* n = settle.add_nacks();
      n->set_lease_id(got[i].lease_id());
      n->mutable_delay()->set_seconds(12 * 3600);
    }
    handled = got.size();
    broker_->Settle(id, settle, false);
  }
  EXPECT_EQ(Backlog("q"), 50);  // all owed, waiting out their delay
  broker_->Detach(id);
}

TEST_F(LimitsTest, DeliveriesThatNeverLeftTheBrokerAreNotCountedAsAttempts) {
  Create("q");
  Publish({Event("a"), Event("b"), Event("c")});
  FakeConsumer& first = NewConsumer();
  const ConsumerId id = Attach("q", &first, 10);
  std::vector<v1::Delivery> got = first.WaitForDeliveries(3);
  ASSERT_EQ(got.size(), 3u);
  // The stream wrote only the first to its client.
  broker_->Detach(id, {got[1].lease_id(), got[2].lease_id()});
  FakeConsumer& second = NewConsumer();
  const ConsumerId id2 = Attach("q", &second, 10);
  std::map<std::string, int> attempts;
  for (const auto& d : second.WaitForDeliveries(3)) attempts[d.event().id()] = d.attempt();
  EXPECT_EQ(attempts[got[0].event().id()], 2);
  EXPECT_EQ(attempts[got[1].event().id()], 1);
  EXPECT_EQ(attempts[got[2].event().id()], 1);
  broker_->Detach(id2);
}

TEST_F(LimitsTest, ReleasedDeliveriesComeBackWithoutCountingAnAttempt) {
  Create("q", Settings(absl::Seconds(30), /*max_attempts=*/1));
  Publish({Event("r")});
  FakeConsumer& first = NewConsumer();
  const ConsumerId id = Attach("q", &first, 10);
  std::vector<v1::Delivery> got = first.WaitForDeliveries(1);
  ASSERT_EQ(got.size(), 1u);
  v1::Settle release;
  release.add_releases(got[0].lease_id());
  broker_->Settle(id, release, /*confirm=*/true);
  ASSERT_EQ(first.WaitForResults(1).size(), 1u);
  // One attempt allowed, and still not dead-lettered: delivered again as
  // attempt 1 (here to the same consumer, which still has credits).
  got = first.WaitForDeliveries(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].event().id(), "r");
  EXPECT_EQ(got[1].attempt(), 1);
  broker_->Detach(id);
}

}  // namespace
}  // namespace pettube::broker
