// Issue 13's delivery and replay defects, one deterministic test each:
// every test here failed before its fix.

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/broker/broker_test_util.h"

namespace pettube::broker {
namespace {

using DefectTest = BrokerTest;

v1::Settle NackAll(const std::vector<v1::Delivery>& deliveries) {
  v1::Settle settle;
  for (const auto& d : deliveries) {
    v1::Nack* n = settle.add_nacks();
    n->set_lease_id(d.lease_id());
    n->set_error("handler failed");
  }
  return settle;
}

std::vector<std::string> Ids(const std::vector<v1::Delivery>& deliveries) {
  std::vector<std::string> ids;
  for (const auto& d : deliveries) ids.push_back(d.event().id());
  std::sort(ids.begin(), ids.end());
  return ids;
}

// Defect 3: dead letters outlive the log's retention, and redrive makes
// them deliverable again, also across restarts that run retention.
TEST_F(DefectTest, RedriveAfterRetentionDeliversEveryDeadLetterAcrossRestarts) {
  Create("q", Settings(absl::Seconds(30), /*max_attempts=*/1));
  std::vector<CloudEvent> events;
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i) {
    events.push_back(Event(absl::StrCat("e", i)));
    want.push_back(absl::StrCat("e", i));
  }
  std::sort(want.begin(), want.end());
  Publish(events);
  {
    FakeConsumer& c = NewConsumer();
    const ConsumerId id = Attach("q", &c);
    broker_->Settle(id, NackAll(c.WaitForDeliveries(10)), false);
    broker_->Detach(id);
  }
  auto dead = broker_->ListDeadLetters("subscriptions/q", 0, "");
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->dead_letters_size(), 10);

  // Retention removes every event from the log (they are older than 1 ms).
  Broker::Options short_retention = DefaultOptions();
  short_retention.retention_max_age = absl::Milliseconds(1);
  Reopen(short_retention);
  ASSERT_EQ(FirstSequence(), 0u);
  auto moved = broker_->Redrive("subscriptions/q", 0, 1000);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, 10);
  EXPECT_EQ(Backlog("q"), 10);

  // Restart: retention runs again; the redriven events are still owed.
  Reopen(short_retention);
  EXPECT_EQ(Backlog("q"), 10);
  FakeConsumer& c = NewConsumer();
  const ConsumerId id = Attach("q", &c);
  const std::vector<v1::Delivery> got = c.WaitForDeliveries(10);
  ASSERT_EQ(got.size(), 10u);
  EXPECT_EQ(Ids(got), want);
  for (const auto& d : got) EXPECT_EQ(d.attempt(), 1);  // attempts start over
  // Nacked once more (one attempt allowed), they are dead letters again,
  // with their events.
  broker_->Settle(id, NackAll(got), false);
  dead = broker_->ListDeadLetters("subscriptions/q", 0, "");
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->dead_letters_size(), 10);
  for (const auto& d : dead->dead_letters()) EXPECT_FALSE(d.event().id().empty());
  EXPECT_EQ(Backlog("q"), 0);
  broker_->Detach(id);
}

// Defect 1 (dead-letter side): a ListDeadLetters page stays within the
// response byte limit, and the pages together hold every dead letter.
TEST_F(DefectTest, DeadLetterPagesAreBoundedByBytes) {
  Broker::Options options = DefaultOptions();
  options.max_response_bytes = 20000;
  Reopen(options);
  Create("q", Settings(absl::Seconds(30), /*max_attempts=*/1));
  std::vector<CloudEvent> events;
  for (int i = 0; i < 12; ++i) {
    CloudEvent e = Event(absl::StrCat("big", i));
    e.set_text_data(std::string(3000, 'x'));
    events.push_back(std::move(e));
  }
  Publish(events);
  FakeConsumer& c = NewConsumer();
  const ConsumerId id = Attach("q", &c);
  broker_->Settle(id, NackAll(c.WaitForDeliveries(12)), false);
  std::vector<std::string> listed;
  std::string token;
  int pages = 0;
  do {
    auto page = broker_->ListDeadLetters("subscriptions/q", 1000, token);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_GT(page->dead_letters_size(), 0);
    EXPECT_LE(page->ByteSizeLong(), options.max_response_bytes);
    for (const auto& d : page->dead_letters()) listed.push_back(d.event().id());
    token = page->next_page_token();
    ASSERT_LT(++pages, 20);
  } while (!token.empty());
  EXPECT_GT(pages, 1);
  EXPECT_EQ(listed.size(), 12u);
  std::set<std::string> unique(listed.begin(), listed.end());
  EXPECT_EQ(unique.size(), 12u);
  broker_->Detach(id);
}

}  // namespace
}  // namespace pettube::broker
