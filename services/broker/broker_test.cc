#include "services/broker/broker.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "services/broker/broker_test_util.h"
#include "services/broker/fake_clock.h"
#include "services/broker/rocksdb_broker_store.h"

namespace pettube::broker {
namespace {

// Notified on the first change of a watched subscription's stats.
class BacklogChanged : public StatsObserver {
 public:
  void StatsChanged() override {
    if (!notified.HasBeenNotified()) notified.Notify();
  }
  void Close(const absl::Status&) override {}
  absl::Notification notified;
};

TEST_F(BrokerTest, PublishAssignsIncreasingSequences) {
  auto r = Publish({Event("a"), Event("b")});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].status().code(), 0);
  EXPECT_EQ(r[0].sequence(), 1u);
  EXPECT_EQ(r[1].sequence(), 2u);
  EXPECT_FALSE(r[0].duplicate());
}

TEST_F(BrokerTest, RepublishingSameSourceAndIdIsADuplicateNotStoredTwice) {
  Create("s");
  Publish({Event("a")});
  auto again = Publish({Event("a"), Event("a")});
  EXPECT_TRUE(again[0].duplicate());
  EXPECT_EQ(again[0].sequence(), 1u);
  EXPECT_TRUE(again[1].duplicate());
  EXPECT_EQ(Backlog("s"), 1);
  auto info = broker_->GetStreamInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_sequence(), 1u);
}

TEST_F(BrokerTest, DuplicateWithinOneBatchIsDetected) {
  auto r = Publish({Event("x"), Event("x")});
  EXPECT_FALSE(r[0].duplicate());
  EXPECT_TRUE(r[1].duplicate());
  EXPECT_EQ(r[1].sequence(), r[0].sequence());
}

TEST_F(BrokerTest, InvalidEventsGetTheirOwnErrorAndValidOnesAreStored) {
  CloudEvent no_id = Event("");
  CloudEvent no_source = Event("s1");
  no_source.clear_source();
  CloudEvent bad_version = Event("v1");
  bad_version.set_spec_version("0.3");
  CloudEvent no_type = Event("t1", "");
  CloudEvent big = Event("big");
  big.set_text_data(std::string(5000, 'x'));
  CloudEvent bad_attr = Event("attr");
  (*bad_attr.mutable_attributes())["Subject"].set_ce_string("x");
  auto r = Publish({no_id, Event("ok"), no_source, bad_version, no_type, big, bad_attr});
  ASSERT_EQ(r.size(), 7u);
  const int kInvalid = static_cast<int>(absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r[0].status().code(), kInvalid);
  EXPECT_NE(r[0].status().message().find("event.id"), std::string::npos);
  EXPECT_EQ(r[1].status().code(), 0);
  EXPECT_EQ(r[1].sequence(), 1u);
  EXPECT_NE(r[2].status().message().find("event.source"), std::string::npos);
  EXPECT_NE(r[3].status().message().find("spec_version"), std::string::npos);
  EXPECT_NE(r[4].status().message().find("event.type"), std::string::npos);
  EXPECT_NE(r[5].status().message().find("limit"), std::string::npos);
  EXPECT_NE(r[6].status().message().find("Subject"), std::string::npos);
}

TEST_F(BrokerTest, OnlyEventsAnAttachedConsumerWillReadAreCached) {
  Create("q");
  Publish({Event("1"), Event("2")});
  EXPECT_EQ(broker_->EventCacheBytes(), 0u);  // nobody attached: left on disk
  FakeConsumer& c = NewConsumer();
  Attach("q", &c);
  ASSERT_EQ(c.WaitForDeliveries(2).size(), 2u);  // read back from the store
  const size_t after_refill = broker_->EventCacheBytes();
  Publish({Event("3")});
  EXPECT_GT(broker_->EventCacheBytes(), after_refill);  // a reader is attached
  EXPECT_EQ(c.WaitForDeliveries(3).size(), 3u);
}

TEST_F(BrokerTest, EverySubscriptionGetsEveryMatchingEvent) {
  Create("all");
  v1::Subscription only_ready = Settings();
  only_ready.mutable_filter()->mutable_exact()->set_attribute("type");
  only_ready.mutable_filter()->mutable_exact()->set_value("pettube.media.ready");
  Create("ready", only_ready);
  Publish({Event("1", "pettube.media.uploaded"), Event("2", "pettube.media.ready")});
  FakeConsumer& all = NewConsumer();
  FakeConsumer& ready = NewConsumer();
  Attach("all", &all);
  Attach("ready", &ready);
  EXPECT_EQ(all.WaitForDeliveries(2).size(), 2u);
  auto got = ready.WaitForDeliveries(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event().id(), "2");
  EXPECT_EQ(got[0].attempt(), 1);
}

TEST_F(BrokerTest, CompetingConsumersShareEventsWithoutOverlap) {
  Create("q");
  FakeConsumer& a = NewConsumer();
  FakeConsumer& b = NewConsumer();
  Attach("q", &a, 5);
  Attach("q", &b, 5);
  std::vector<CloudEvent> events;
  for (int i = 0; i < 10; ++i) events.push_back(Event(absl::StrCat("e", i)));
  Publish(events);
  auto da = a.WaitForDeliveries(5);
  auto db = b.WaitForDeliveries(5);
  EXPECT_EQ(da.size(), 5u);
  EXPECT_EQ(db.size(), 5u);
  std::set<uint64_t> seqs;
  for (auto& d : da) seqs.insert(d.sequence());
  for (auto& d : db) seqs.insert(d.sequence());
  EXPECT_EQ(seqs.size(), 10u);
}

TEST_F(BrokerTest, CreditsBoundInFlightAndFlowGrantsMore) {
  Create("q");
  Publish({Event("1"), Event("2"), Event("3")});
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c, 1);
  EXPECT_EQ(c.WaitForDeliveries(1).size(), 1u);
  // The dispatch pass that made the delivery is over (GetSubscription takes
  // the lock it held): it stopped at the one credit.
  EXPECT_EQ(InFlight("q"), 1);
  EXPECT_EQ(c.count(), 1u);
  ASSERT_TRUE(broker_->AddCredits(id, 2).ok());
  EXPECT_EQ(c.WaitForDeliveries(3).size(), 3u);
  EXPECT_EQ(broker_->AddCredits(id, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(broker_->AddCredits(id, Broker::kMaxCredits + 1).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerTest, AckSettlesAndShrinksBacklogDurably) {
  Create("q");
  Publish({Event("1"), Event("2")});
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  auto d = c.WaitForDeliveries(2);
  ASSERT_EQ(d.size(), 2u);
  broker_->Settle(id, Acks({d[0].lease_id()}), /*confirm=*/true);
  auto results = c.WaitForResults(1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status().code(), 0);
  EXPECT_EQ(Backlog("q"), 1);
  // After a restart only the unacked event comes back.
  Reopen();
  FakeConsumer& again = NewConsumer();
  Attach("q", &again);
  auto redelivered = again.WaitForDeliveries(1);
  ASSERT_EQ(redelivered.size(), 1u);
  EXPECT_EQ(redelivered[0].event().id(), "2");
  // Nothing else is owed, and the one owed is the one in flight.
  EXPECT_EQ(Backlog("q"), 1);
  EXPECT_EQ(InFlight("q"), 1);
  EXPECT_EQ(again.count(), 1u);
}

// Acks raise the ack floor and delete only what lies above it: what lies
// between acked events and is still owed (unacked, nacked, or skipped by
// the filter) must survive a restart, and nothing acked may come back.
TEST_F(BrokerTest, AcksKeepWhatIsStillOwedBetweenThemAcrossRestart) {
  v1::Subscription uploads = Settings();
  uploads.mutable_filter()->mutable_exact()->set_attribute("type");
  uploads.mutable_filter()->mutable_exact()->set_value("pettube.media.uploaded");
  Create("q", uploads);
  std::vector<CloudEvent> events;
  for (int i = 1; i <= 12; ++i) {
    // Every fourth event is of another type: not queued for "q".
    events.push_back(
        Event(absl::StrCat(i), i % 4 == 0 ? "pettube.media.ready" : "pettube.media.uploaded"));
  }
  Publish(events);
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  auto d = c.WaitForDeliveries(9);
  ASSERT_EQ(d.size(), 9u);  // 1 2 3 5 6 7 9 10 11
  // Ack all but "6" (left unsettled) and "10" (nacked, retried later).
  v1::Settle settle;
  for (const auto& delivery : d) {
    const std::string& event_id = delivery.event().id();
    if (event_id == "6") continue;
    if (event_id == "10") {
      settle.add_nacks()->set_lease_id(delivery.lease_id());
      settle.mutable_nacks(0)->mutable_delay()->set_seconds(3600);
      continue;
    }
    settle.add_acks(delivery.lease_id());
  }
  broker_->Settle(id, settle, /*confirm=*/true);
  c.WaitForResults(8);
  EXPECT_EQ(Backlog("q"), 2);
  Reopen();
  EXPECT_EQ(Backlog("q"), 2);
  FakeConsumer& again = NewConsumer();
  Attach("q", &again);
  auto redelivered = again.WaitForDeliveries(2);
  ASSERT_EQ(redelivered.size(), 2u);
  std::set<std::string> ids = {redelivered[0].event().id(), redelivered[1].event().id()};
  EXPECT_EQ(ids, (std::set<std::string>{"6", "10"}));
  EXPECT_EQ(Backlog("q"), 2);
  EXPECT_EQ(InFlight("q"), 2);
  EXPECT_EQ(again.count(), 2u);
}

// A redrive re-queues an event below the ack floor: it must stay queued
// across a restart, and the acked events the lowered floor uncovers must
// not come back.
TEST_F(BrokerTest, RedriveBelowTheAckFloorBringsBackOnlyTheRedrivenEvent) {
  Create("q", Settings(absl::Seconds(30), 1));
  Publish({Event("1"), Event("2"), Event("3"), Event("4")});
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  auto d = c.WaitForDeliveries(4);
  ASSERT_EQ(d.size(), 4u);
  v1::Settle settle;
  settle.add_nacks()->set_lease_id(d[1].lease_id());  // one attempt: dead at once
  settle.add_acks(d[0].lease_id());
  settle.add_acks(d[2].lease_id());
  settle.add_acks(d[3].lease_id());
  broker_->Settle(id, settle, true);
  ASSERT_EQ(c.WaitForResults(4).size(), 4u);
  EXPECT_EQ(Backlog("q"), 0);
  auto moved = broker_->Redrive("subscriptions/q", 0, 100);
  ASSERT_TRUE(moved.ok()) << moved.status();
  ASSERT_EQ(*moved, 1);
  EXPECT_EQ(c.WaitForDeliveries(5).size(), 5u);  // the redriven one, not settled
  Reopen();
  EXPECT_EQ(Backlog("q"), 1);
  FakeConsumer& again = NewConsumer();
  Attach("q", &again);
  auto redelivered = again.WaitForDeliveries(1);
  ASSERT_EQ(redelivered.size(), 1u);
  EXPECT_EQ(redelivered[0].event().id(), "2");
  EXPECT_EQ(Backlog("q"), 1);
  EXPECT_EQ(InFlight("q"), 1);
  EXPECT_EQ(again.count(), 1u);
}

TEST_F(BrokerTest, NackRedeliversWithTheNextAttempt) {
  Create("q");
  Publish({Event("1")});
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  auto first = c.WaitForDeliveries(1);
  v1::Settle nack;
  nack.add_nacks()->set_lease_id(first[0].lease_id());
  broker_->Settle(id, nack, false);
  auto both = c.WaitForDeliveries(2);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].event().id(), "1");
  EXPECT_EQ(both[1].attempt(), 2);
  EXPECT_NE(both[1].lease_id(), first[0].lease_id());
}

TEST_F(BrokerTest, LateAckAfterRedeliveryIsRejectedAndNotCredited) {
  FakeClock clock;
  Broker::Options options = DefaultOptions();
  options.clock = &clock;
  Reopen(options);
  Create("q", Settings(absl::Seconds(1)));
  Publish({Event("1")});
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  ASSERT_EQ(c.WaitForDeliveries(1).size(), 1u);
  clock.Advance(absl::Seconds(1));        // the lease expires
  clock.Advance(absl::Milliseconds(20));  // and the backoff (10-20 ms) passes
  auto both = c.WaitForDeliveries(2);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].attempt(), 2);
  broker_->Settle(id, Acks({both[0].lease_id()}), true);
  auto results = c.WaitForResults(1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status().code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Backlog("q"), 1);
  // The live lease still settles.
  broker_->Settle(id, Acks({both[1].lease_id()}), true);
  results = c.WaitForResults(2);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].status().code(), 0);
  EXPECT_EQ(Backlog("q"), 0);
  broker_.reset();  // before the clock it uses
}

TEST_F(BrokerTest, ExtendedLeaseOutlivesItsOriginalDeadline) {
  FakeClock clock;
  Broker::Options options = DefaultOptions();
  options.clock = &clock;
  Reopen(options);
  Create("q", Settings(absl::Seconds(1)));
  Publish({Event("1")});
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  auto first = c.WaitForDeliveries(1);
  ASSERT_EQ(first.size(), 1u);
  v1::Settle extend;
  extend.add_extends()->set_lease_id(first[0].lease_id());
  *extend.mutable_extends(0)->mutable_ack_deadline() = TimeUtil::SecondsToDuration(60);
  broker_->Settle(id, extend, /*confirm=*/true);
  auto results = c.WaitForResults(1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status().code(), 0);
  // Past the original 1 s deadline (and any backoff) there is no
  // redelivery: the lease is still in flight...
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(InFlight("q"), 1);
  EXPECT_EQ(c.count(), 1u);
  // ...and the lease still settles.
  broker_->Settle(id, Acks({first[0].lease_id()}), true);
  results = c.WaitForResults(2);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1].status().code(), 0);
  // Extending a settled lease is refused, for that item only.
  broker_->Settle(id, extend, true);
  results = c.WaitForResults(3);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[2].status().code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  broker_.reset();  // before the clock it uses
}

TEST_F(BrokerTest, GarbageLeaseIdIsInvalidArgument) {
  Create("q");
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  broker_->Settle(id, Acks({"not-a-lease"}), false);
  auto results = c.WaitForResults(1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
}

TEST_F(BrokerTest, DetachedConsumersDeliveriesGoToAnotherAtOnce) {
  Create("q");  // 30 s ack deadline: redelivery must not wait for it
  Publish({Event("1")});
  FakeConsumer& first = NewConsumer();
  FakeConsumer& second = NewConsumer();
  ConsumerId first_id = Attach("q", &first);
  ASSERT_EQ(first.WaitForDeliveries(1).size(), 1u);
  Attach("q", &second);
  broker_->Detach(first_id);
  auto got = second.WaitForDeliveries(1, absl::Seconds(5));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].event().id(), "1");
  EXPECT_EQ(got[0].attempt(), 2);
}

TEST_F(BrokerTest, ExhaustedEventsAreDeadLetteredWithLastErrorAndCanBeRedriven) {
  Create("q", Settings(absl::Seconds(30), 2));
  Publish({Event("poison"), Event("fine")});
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  size_t seen = 0;
  for (int round = 0; round < 2; ++round) {
    // Both events first, then the poison's redelivery.
    auto d = c.WaitForDeliveries(round == 0 ? 2 : seen + 1);
    for (; seen < d.size(); ++seen) {
      if (d[seen].event().id() == "fine") {
        broker_->Settle(id, Acks({d[seen].lease_id()}), false);
      } else {
        v1::Settle nack;
        nack.add_nacks()->set_lease_id(d[seen].lease_id());
        nack.mutable_nacks(0)->set_error("cannot decode video");
        broker_->Settle(id, nack, false);
      }
    }
  }
  c.WaitForDeliveries(3);
  // Listing sees every settlement made before it (read-your-writes).
  auto dead = broker_->ListDeadLetters("subscriptions/q", 10, "");
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->dead_letters_size(), 1);
  EXPECT_EQ(dead->dead_letters(0).event().id(), "poison");
  EXPECT_EQ(dead->dead_letters(0).attempts(), 2);
  EXPECT_EQ(dead->dead_letters(0).last_error(), "cannot decode video");
  EXPECT_EQ(Backlog("q"), 0);
  auto moved = broker_->Redrive("subscriptions/q", 0, 100);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, 1);
  auto after = c.WaitForDeliveries(4);
  ASSERT_EQ(after.size(), 4u);
  EXPECT_EQ(after[3].event().id(), "poison");
  EXPECT_EQ(after[3].attempt(), 1);
}

TEST_F(BrokerTest, EventsOlderThanMaxAgeAreDeadLetteredNotDelivered) {
  v1::Subscription s = Settings();
  *s.mutable_max_age() = TimeUtil::MillisecondsToDuration(1);
  Create("q", s);
  Publish({Event("old")});
  // Age the event past max_age (1 ms) without sleeping: reopening the store
  // takes longer than that.
  Reopen();
  // Told when the backlog changes: the refill finds the event too old and
  // dead-letters it instead of delivering it.
  BacklogChanged changed;
  v1::SubscriptionStats initial;
  auto watch = broker_->WatchStats("subscriptions/q", &changed, &initial);
  ASSERT_TRUE(watch.ok()) << watch.status();
  FakeConsumer& c = NewConsumer();
  Attach("q", &c);
  ASSERT_TRUE(changed.notified.WaitForNotificationWithTimeout(absl::Seconds(10)));
  broker_->UnwatchStats(*watch);
  EXPECT_EQ(c.count(), 0u);
  auto sub = broker_->GetSubscription("subscriptions/q");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(sub->stats().dead_lettered(), 1);
  EXPECT_EQ(sub->stats().backlog(), 0);
}

TEST_F(BrokerTest, PartitionKeyOrderingDeliversOneAtATimePerKey) {
  v1::Subscription s = Settings();
  s.set_ordering(v1::ORDERING_PARTITION_KEY);
  Create("q", s);
  Publish(
      {Event("a1", "t", "A"), Event("a2", "t", "A"), Event("b1", "t", "B"), Event("a3", "t", "A")});
  FakeConsumer& c = NewConsumer();
  ConsumerId id = Attach("q", &c);
  auto d = c.WaitForDeliveries(2);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].event().id(), "a1");
  EXPECT_EQ(d[1].event().id(), "b1");  // B is not blocked by A
  // The dispatch pass is over: a2 and a3 wait behind a1.
  EXPECT_EQ(InFlight("q"), 2);
  EXPECT_EQ(Backlog("q"), 4);
  EXPECT_EQ(c.count(), 2u);
  // A failed attempt keeps A's order: a1 again before a2.
  v1::Settle nack;
  nack.add_nacks()->set_lease_id(d[0].lease_id());
  broker_->Settle(id, nack, false);
  d = c.WaitForDeliveries(3);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[2].event().id(), "a1");
  broker_->Settle(id, Acks({d[2].lease_id()}), false);
  d = c.WaitForDeliveries(4);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[3].event().id(), "a2");
  broker_->Settle(id, Acks({d[3].lease_id()}), false);
  d = c.WaitForDeliveries(5);
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d[4].event().id(), "a3");
}

TEST_F(BrokerTest, EarliestStartPositionBackfillsAndSeekReplays) {
  Publish({Event("1"), Event("2"), Event("3")});
  v1::Subscription s = Settings();
  s.mutable_start_position()->mutable_earliest();
  Create("replay", s);
  Create("latest");
  EXPECT_EQ(Backlog("replay"), 3);
  EXPECT_EQ(Backlog("latest"), 0);
  v1::StartPosition from2;
  from2.set_sequence(2);
  auto sought = broker_->Seek("subscriptions/latest", from2);
  ASSERT_TRUE(sought.ok()) << sought.status();
  EXPECT_EQ(sought->stats().backlog(), 2);
  FakeConsumer& c = NewConsumer();
  Attach("latest", &c);
  auto d = c.WaitForDeliveries(2);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].sequence(), 2u);
  EXPECT_EQ(d[1].sequence(), 3u);
}

TEST_F(BrokerTest, SubscriptionsAndBacklogSurviveRestart) {
  Create("q");
  Publish({Event("1"), Event("2")});
  Reopen();
  EXPECT_EQ(Backlog("q"), 2);
  auto more = Publish({Event("3"), Event("1")});
  EXPECT_EQ(more[0].sequence(), 3u);
  EXPECT_TRUE(more[1].duplicate());  // the dedup window survives restarts
  FakeConsumer& c = NewConsumer();
  Attach("q", &c);
  EXPECT_EQ(c.WaitForDeliveries(3).size(), 3u);
}

TEST_F(BrokerTest, BadSubscriptionRequestsGetPreciseErrors) {
  EXPECT_EQ(broker_->CreateSubscription("Bad_Id", Settings()).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Subscription bad_filter = Settings();
  bad_filter.mutable_filter()->mutable_prefix()->set_attribute("type");
  auto s = broker_->CreateSubscription("x", bad_filter);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("filter"), absl::string_view::npos) << s.status();
  v1::Subscription bad_deadline = Settings(absl::Milliseconds(10));
  EXPECT_EQ(broker_->CreateSubscription("y", bad_deadline).status().code(),
            absl::StatusCode::kInvalidArgument);
  Create("z");
  EXPECT_EQ(broker_->CreateSubscription("z", Settings()).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(broker_->GetSubscription("subscriptions/nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(broker_->GetSubscription("nope").status().code(), absl::StatusCode::kInvalidArgument);
  FakeConsumer& c = NewConsumer();
  v1::Subscription settings;
  EXPECT_EQ(broker_->Attach("subscriptions/nope", 1, "", &c, &settings).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(broker_->Attach("subscriptions/z", 0, "", &c, &settings).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerTest, ListPagesThroughSubscriptionsInNameOrder) {
  for (const char* id : {"c", "a", "b"}) Create(id);
  auto page1 = broker_->ListSubscriptions(2, "");
  ASSERT_TRUE(page1.ok());
  ASSERT_EQ(page1->subscriptions_size(), 2);
  EXPECT_EQ(page1->subscriptions(0).name(), "subscriptions/a");
  EXPECT_EQ(page1->subscriptions(1).name(), "subscriptions/b");
  auto page2 = broker_->ListSubscriptions(2, page1->next_page_token());
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->subscriptions_size(), 1);
  EXPECT_EQ(page2->subscriptions(0).name(), "subscriptions/c");
  EXPECT_TRUE(page2->next_page_token().empty());
}

TEST_F(BrokerTest, UpdateChangesTheFilterForNewEvents) {
  Create("q");
  v1::Subscription update;
  update.set_name("subscriptions/q");
  update.mutable_filter()->mutable_prefix()->set_attribute("type");
  update.mutable_filter()->mutable_prefix()->set_value("pettube.media.");
  auto updated = broker_->UpdateSubscription(update, {"filter"});
  ASSERT_TRUE(updated.ok()) << updated.status();
  Publish({Event("1", "other.thing"), Event("2", "pettube.media.ready")});
  EXPECT_EQ(Backlog("q"), 1);
  EXPECT_EQ(broker_->UpdateSubscription(update, {"ordering"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerTest, DeleteEndsConsumersAndForgetsTheSubscription) {
  Create("q");
  FakeConsumer& c = NewConsumer();
  Attach("q", &c);
  ASSERT_TRUE(broker_->DeleteSubscription("subscriptions/q").ok());
  ASSERT_TRUE(c.closed().has_value());
  EXPECT_EQ(c.closed()->code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker_->GetSubscription("subscriptions/q").status().code(),
            absl::StatusCode::kNotFound);
  Reopen();
  EXPECT_EQ(broker_->GetSubscription("subscriptions/q").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(BrokerTest, AgeRetentionRemovesExpiredEventsEvenIfOwed) {
  Create("q");
  Publish({Event("1"), Event("2")});
  EXPECT_EQ(FirstSequence(), 1u);
  Broker::Options short_retention = DefaultOptions();
  short_retention.retention_max_age = absl::Milliseconds(1);
  Reopen(short_retention);         // takes longer than 1 ms; retention runs at open
  EXPECT_EQ(FirstSequence(), 0u);  // empty
  // Nothing left to deliver: the owed entries are dropped when reached.
  // (Back to the default retention: a new event must live long enough to
  // be delivered.)
  Reopen();
  FakeConsumer& c = NewConsumer();
  Attach("q", &c);
  Publish({Event("3")});
  auto d = c.WaitForDeliveries(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].event().id(), "3");
}

TEST_F(BrokerTest, SizeRetentionKeepsEventsStillOwed) {
  Broker::Options small = DefaultOptions();
  small.retention_max_bytes = 20000;
  Reopen(small);
  std::vector<CloudEvent> events;
  for (int i = 0; i < 100; ++i) {
    CloudEvent e = Event(absl::StrCat("old", i));
    e.set_text_data(std::string(1000, 'x'));
    events.push_back(e);
  }
  Publish(events);  // ~100 KB, nobody owes them
  Create("q");
  Publish({Event("owed")});
  broker_->EnforceRetention();
  const uint64_t first = FirstSequence();
  EXPECT_GT(first, 50u);   // most unowed events are gone...
  EXPECT_LE(first, 101u);  // ...but not the one "q" still owes (seq 101)
  FakeConsumer& c = NewConsumer();
  Attach("q", &c);
  auto d = c.WaitForDeliveries(1);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].event().id(), "owed");
}

}  // namespace
}  // namespace pettube::broker
