// Issue 13's delivery and replay defects, one deterministic test each:
// every test here failed before its fix.

#include <algorithm>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/broker/broker_test_util.h"
#include "services/broker/hooked_store.h"

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

// Holds one write of the committer until released: the test acts in the
// window between a change's preparation (under the broker's lock) and its
// write.
struct WriteGate {
  std::atomic<bool> armed{true};
  absl::Notification reached;
  absl::Notification release;
};

// A broker over a HookedStore, so tests can hold writes and see scans.
class HookedTest : public BrokerTest {
 protected:
  void SetUp() override {
    BrokerTest::SetUp();
    broker_.reset();
    hooked_ = std::make_unique<HookedStore>(store_.get());
    registry_ = std::make_unique<metrics::Registry>();
    auto broker = Broker::Open(hooked_.get(), DefaultOptions(), registry_.get());
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
  }
  void TearDown() override { broker_.reset(); }  // before hooked_ goes

  std::shared_ptr<WriteGate> HoldNextWrite() {
    auto gate = std::make_shared<WriteGate>();
    hooked_->SetWriteHook([gate](BrokerStore::Batch&) {
      if (gate->armed.exchange(false)) {
        gate->reached.Notify();
        gate->release.WaitForNotification();
      }
      return absl::OkStatus();
    });
    return gate;
  }

  // Notified at the next queue scan (a refill reading the store).
  std::shared_ptr<absl::Notification> NextScan() {
    auto scanned = std::make_shared<absl::Notification>();
    hooked_->SetScanQueueHook([scanned](uint32_t) {
      if (!scanned->HasBeenNotified()) scanned->Notify();
    });
    return scanned;
  }

  std::unique_ptr<HookedStore> hooked_;
};

std::set<std::string> IdsFrom(const std::vector<v1::Delivery>& deliveries, size_t from) {
  std::set<std::string> ids;
  for (size_t i = from; i < deliveries.size(); ++i) ids.insert(deliveries[i].event().id());
  return ids;
}

// Defect 2: a pump inside a seek's window (here: credits granted) must not
// start a refill that reads the old queue, concludes it caught up, and
// lets the next publish move the cursor past the replay.
TEST_F(HookedTest, SeekToEarliestReplaysEverythingWhenARefillRacesItsWrite) {
  Create("q");
  Publish({Event("e0"), Event("e1"), Event("e2"), Event("e3"), Event("e4")});
  FakeConsumer& c = NewConsumer();
  const ConsumerId id = Attach("q", &c, /*credits=*/5);
  std::vector<std::string> leases;
  for (const auto& d : c.WaitForDeliveries(5)) leases.push_back(d.lease_id());
  broker_->Settle(id, Acks(leases), /*confirm=*/true);  // durable: floor above e4
  ASSERT_EQ(c.WaitForResults(5).size(), 5u);

  auto gate = HoldNextWrite();
  absl::StatusOr<v1::Subscription> seek;
  std::thread seeker([&] {
    v1::StartPosition earliest;
    earliest.mutable_earliest();
    seek = broker_->Seek("subscriptions/q", earliest);
  });
  ASSERT_TRUE(gate->reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
  auto scanned = NextScan();
  ASSERT_TRUE(broker_->AddCredits(id, 20).ok());
  // Before the fix a refill scanned the old queue here; now none starts
  // until the write (so this wait runs out).
  scanned->WaitForNotificationWithTimeout(absl::Milliseconds(300));
  gate->release.Notify();
  seeker.join();
  ASSERT_TRUE(seek.ok()) << seek.status();
  Publish({Event("e5")});
  const std::vector<v1::Delivery> got = c.WaitForDeliveries(11, absl::Seconds(5));
  EXPECT_EQ(IdsFrom(got, 5), (std::set<std::string>{"e0", "e1", "e2", "e3", "e4", "e5"}));
  EXPECT_EQ(Backlog("q"), 6);
  broker_->Detach(id);
}

// Defect 2, the create side: attaching while a create-at-earliest's
// backfill is being written must not skip the backfill.
TEST_F(HookedTest, AttachDuringCreateAtEarliestGetsTheWholeBackfill) {
  Publish({Event("old0"), Event("old1"), Event("old2")});
  auto gate = HoldNextWrite();
  absl::StatusOr<v1::Subscription> created;
  std::thread creator([&] {
    v1::Subscription settings = Settings();
    settings.mutable_start_position()->mutable_earliest();
    created = broker_->CreateSubscription("e", settings);
  });
  ASSERT_TRUE(gate->reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
  auto scanned = NextScan();
  FakeConsumer& c = NewConsumer();
  v1::Subscription settings;
  auto id = broker_->Attach("subscriptions/e", 100, "racer", &c, &settings);
  ASSERT_TRUE(id.ok()) << id.status();
  scanned->WaitForNotificationWithTimeout(absl::Milliseconds(300));
  gate->release.Notify();
  creator.join();
  ASSERT_TRUE(created.ok()) << created.status();
  Publish({Event("new")});
  const std::vector<v1::Delivery> got = c.WaitForDeliveries(4, absl::Seconds(5));
  EXPECT_EQ(IdsFrom(got, 0), (std::set<std::string>{"old0", "old1", "old2", "new"}));
  broker_->Detach(*id);
}

// Defect 4: two copies of one source+id in a group whose write fails both
// fail; neither is answered "OK, duplicate" with a sequence never written.
TEST_F(HookedTest, AFailedCommitFailsTheDuplicatesInItsGroupToo) {
  hooked_->SetWriteHook([](BrokerStore::Batch&) { return absl::UnavailableError("disk full"); });
  auto results = Publish({Event("x"), Event("x")});
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_EQ(r.status().code(), static_cast<int>(absl::StatusCode::kUnavailable))
        << r.DebugString();
    EXPECT_FALSE(r.duplicate());
    EXPECT_EQ(r.sequence(), 0u);
  }
  hooked_->SetWriteHook(nullptr);
  results = Publish({Event("x")});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status().code(), 0);
  EXPECT_FALSE(results[0].duplicate());  // the failed copies left no trace
}

// Holds the next sync until `release`, then returns `result`.
struct SyncGate {
  std::atomic<bool> armed{true};
  absl::Notification reached;
  absl::Notification release;
  absl::Status result;
};

class SyncHeldTest : public HookedTest {
 protected:
  std::shared_ptr<SyncGate> HoldNextSync(absl::Status result = absl::OkStatus()) {
    auto gate = std::make_shared<SyncGate>();
    gate->result = std::move(result);
    hooked_->SetSyncHook([gate]() -> absl::Status {
      if (!gate->armed.exchange(false)) return absl::OkStatus();
      gate->reached.Notify();
      gate->release.WaitForNotification();
      return gate->result;
    });
    return gate;
  }

  // Publishes without waiting; `done` is notified with the results.
  struct Pending {
    absl::Notification done;
    std::vector<v1::PublishResult> results;
  };
  std::shared_ptr<Pending> PublishAsync(std::vector<CloudEvent> events) {
    auto p = std::make_shared<Pending>();
    broker_->Publish(std::move(events), [p](std::vector<v1::PublishResult> r) {
      p->results = std::move(r);
      p->done.Notify();
    });
    return p;
  }

  // Publishes "x" and holds its sync (ending with `sync_result` once
  // released), then publishes a copy of "x" and a new "y" and returns once
  // that second publish is being prepared, during the held sync.
  struct HeldPair {
    std::shared_ptr<SyncGate> gate;
    std::shared_ptr<Pending> first, second;
  };
  HeldPair PublishACopyDuringAHeldSync(absl::Status sync_result = absl::OkStatus()) {
    HeldPair pair;
    pair.gate = HoldNextSync(std::move(sync_result));
    pair.first = PublishAsync({Event("x")});
    EXPECT_TRUE(pair.gate->reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
    // "y" is looked up in the store: the second publish is being prepared.
    absl::Notification second_prepared;
    hooked_->SetDedupLookupHook([&] {
      if (!second_prepared.HasBeenNotified()) second_prepared.Notify();
    });
    pair.second = PublishAsync({Event("x"), Event("y")});
    EXPECT_TRUE(second_prepared.WaitForNotificationWithTimeout(absl::Seconds(10)));
    hooked_->SetDedupLookupHook(nullptr);
    return pair;
  }
};

// A publish is written before its sync and visible in the store from
// then: a refill in that window delivers what is durable and not it; its
// sync hands it over.
TEST_F(SyncHeldTest, ARefillNeverDeliversAnEventWrittenButNotSynced) {
  Create("q");
  Publish({Event("e0")});  // nobody attached: left for a refill
  auto gate = HoldNextSync();
  auto e1 = PublishAsync({Event("e1")});
  ASSERT_TRUE(gate->reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // e1 is written (its sync runs after its write) and not durable.
  auto scanned = NextScan();
  FakeConsumer& c = NewConsumer();
  const ConsumerId id = Attach("q", &c, /*credits=*/10);
  ASSERT_TRUE(scanned->WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_EQ(c.WaitForDeliveries(1).size(), 1u);
  // Read under the broker's lock: the refill's dispatch pass is over.
  EXPECT_EQ(InFlight("q"), 1);
  std::vector<v1::Delivery> got = c.WaitForDeliveries(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event().id(), "e0");
  EXPECT_FALSE(e1->done.HasBeenNotified());
  gate->release.Notify();
  ASSERT_TRUE(e1->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_EQ(e1->results.size(), 1u);
  EXPECT_EQ(e1->results[0].status().code(), 0);
  got = c.WaitForDeliveries(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].event().id(), "e1");
  broker_->Detach(id);
}

// A copy of an event written and not yet synced is found (it is not
// durable in the store yet) and answered only after the original's sync,
// with its sequence. The stream's last sequence is the durable one.
TEST_F(SyncHeldTest, ADuplicateOfAnUnsyncedEventIsAnsweredAfterItsSync) {
  auto [gate, first, second] = PublishACopyDuringAHeldSync();
  EXPECT_FALSE(first->done.HasBeenNotified());
  EXPECT_FALSE(second->done.HasBeenNotified());
  auto info = broker_->GetStreamInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_sequence(), 0u);
  EXPECT_EQ(info->event_count(), 0);
  gate->release.Notify();
  ASSERT_TRUE(first->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(second->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_EQ(first->results.size(), 1u);
  EXPECT_EQ(first->results[0].status().code(), 0);
  ASSERT_EQ(second->results.size(), 2u);
  EXPECT_EQ(second->results[0].status().code(), 0);
  EXPECT_TRUE(second->results[0].duplicate());
  EXPECT_EQ(second->results[0].sequence(), first->results[0].sequence());
  EXPECT_EQ(second->results[1].status().code(), 0);
  EXPECT_GT(second->results[1].sequence(), first->results[0].sequence());
}

// A failed sync fails its events and the copies of them prepared
// meanwhile; then every publish fails until the broker restarts: the
// store still shows the events whose sync failed, and a retry would find
// them as duplicates. Nothing of them is delivered.
TEST_F(SyncHeldTest, AFailedSyncFailsEveryLaterPublishUntilRestart) {
  Create("q");
  FakeConsumer& c = NewConsumer();
  const ConsumerId id = Attach("q", &c);
  auto [gate, first, second] = PublishACopyDuringAHeldSync(absl::UnavailableError("fsync failed"));
  gate->release.Notify();
  ASSERT_TRUE(first->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(second->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_EQ(first->results.size(), 1u);
  EXPECT_EQ(first->results[0].status().code(), static_cast<int>(absl::StatusCode::kUnavailable));
  ASSERT_EQ(second->results.size(), 2u);
  for (const auto& r : second->results) {
    EXPECT_EQ(r.status().code(), static_cast<int>(absl::StatusCode::kUnavailable))
        << r.DebugString();
    EXPECT_FALSE(r.duplicate());
    EXPECT_EQ(r.sequence(), 0u);
  }
  // The sync hook passes now; the broker still refuses.
  auto again = Publish({Event("x"), Event("z")});
  ASSERT_EQ(again.size(), 2u);
  for (const auto& r : again) {
    EXPECT_EQ(r.status().code(), static_cast<int>(absl::StatusCode::kUnavailable))
        << r.DebugString();
    EXPECT_FALSE(r.duplicate());
  }
  EXPECT_EQ(Backlog("q"), 0);
  EXPECT_EQ(InFlight("q"), 0);
  EXPECT_EQ(c.count(), 0u);
  broker_->Detach(id);
  // After a restart, publishing works again.
  broker_.reset();
  auto broker = Broker::Open(hooked_.get(), DefaultOptions(), registry_.get());
  ASSERT_TRUE(broker.ok()) << broker.status();
  broker_ = std::move(*broker);
  auto after = Publish({Event("z")});
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].status().code(), 0) << after[0].DebugString();
}

// Defect 5: an update whose write fails leaves the settings as they were.
TEST_F(HookedTest, AFailedUpdateChangesNothing) {
  Create("q");
  hooked_->SetWriteHook([](BrokerStore::Batch&) { return absl::UnavailableError("disk full"); });
  v1::Subscription update;
  update.set_name("subscriptions/q");
  update.set_max_delivery_attempts(7);
  EXPECT_EQ(broker_->UpdateSubscription(update, {"max_delivery_attempts"}).status().code(),
            absl::StatusCode::kUnavailable);
  hooked_->SetWriteHook(nullptr);
  auto sub = broker_->GetSubscription("subscriptions/q");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->max_delivery_attempts(), 5);
}

// Defect 5 (likewise): a delete whose write fails leaves the subscription
// and its consumers in place.
TEST_F(HookedTest, AFailedDeleteChangesNothing) {
  Create("q");
  FakeConsumer& c = NewConsumer();
  const ConsumerId id = Attach("q", &c);
  hooked_->SetWriteHook([](BrokerStore::Batch&) { return absl::UnavailableError("disk full"); });
  EXPECT_EQ(broker_->DeleteSubscription("subscriptions/q").code(), absl::StatusCode::kUnavailable);
  hooked_->SetWriteHook(nullptr);
  EXPECT_FALSE(c.closed().has_value());
  EXPECT_TRUE(broker_->GetSubscription("subscriptions/q").ok());
  Publish({Event("still")});
  EXPECT_EQ(c.WaitForDeliveries(1).size(), 1u);
  broker_->Detach(id);
}

// Defect 5: a create that fails (its write, or its backfill's read) leaves
// no subscription behind, in memory or on disk.
TEST_F(HookedTest, AFailedCreateLeavesNoSubscription) {
  Publish({Event("a")});
  hooked_->SetWriteHook([](BrokerStore::Batch&) { return absl::UnavailableError("disk full"); });
  EXPECT_EQ(broker_->CreateSubscription("w", Settings()).status().code(),
            absl::StatusCode::kUnavailable);
  hooked_->SetWriteHook(nullptr);
  hooked_->SetScanEventsHook([] { return absl::DataLossError("unreadable event"); });
  v1::Subscription earliest = Settings();
  earliest.mutable_start_position()->mutable_earliest();
  EXPECT_EQ(broker_->CreateSubscription("b", earliest).status().code(),
            absl::StatusCode::kDataLoss);
  hooked_->SetScanEventsHook(nullptr);
  for (const char* name : {"subscriptions/w", "subscriptions/b"}) {
    EXPECT_EQ(broker_->GetSubscription(name).status().code(), absl::StatusCode::kNotFound);
  }
  broker_.reset();
  Reopen();
  for (const char* name : {"subscriptions/w", "subscriptions/b"}) {
    EXPECT_EQ(broker_->GetSubscription(name).status().code(), absl::StatusCode::kNotFound) << name;
  }
  // The ids are free again.
  Create("b", earliest);
  EXPECT_EQ(Backlog("b"), 1);
}

// Defect 5: a deleted subscription's gauges leave /metrics.
TEST_F(DefectTest, DeletedSubscriptionLeavesNoGauges) {
  Create("gone");
  Publish({Event("a")});
  const std::string series =
      "pettube_broker_subscription_backlog{subscription=\"subscriptions/gone\"}";
  EXPECT_NE(registry_->Serialize().find(series), std::string::npos);
  ASSERT_TRUE(broker_->DeleteSubscription("subscriptions/gone").ok());
  const std::string after = registry_->Serialize();
  EXPECT_EQ(after.find("subscriptions/gone"), std::string::npos) << after;
}

}  // namespace
}  // namespace pettube::broker
