// Leases, backoff and retention with a FakeClock over the in-memory store:
// time moves only when the test moves it, so each deadline is checked at
// its edge (just before, just after) in microseconds of wall time, and
// "nothing happened" is a check of state, not a wait.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/metrics/registry.h"
#include "services/broker/broker.h"
#include "services/broker/broker_test_util.h"
#include "services/broker/fake_clock.h"
#include "services/broker/in_memory_broker_store.h"

namespace pettube::broker {
namespace {

v1::Subscription Backoff(absl::Duration ack_deadline, int max_attempts, absl::Duration min_backoff,
                         absl::Duration max_backoff) {
  v1::Subscription s = Settings(ack_deadline, max_attempts);
  *s.mutable_retry_policy()->mutable_min_backoff() =
      TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(min_backoff));
  *s.mutable_retry_policy()->mutable_max_backoff() =
      TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(max_backoff));
  return s;
}

// Notified on the first change of a watched subscription's stats.
class BacklogObserver : public StatsObserver {
 public:
  void StatsChanged() override {
    if (!changed.HasBeenNotified()) changed.Notify();
  }
  void Close(const absl::Status&) override {}
  absl::Notification changed;
};

class BrokerClockTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(Options()); }

  Broker::Options Options() {
    Broker::Options options;
    options.max_event_bytes = 4096;
    options.sync = false;
    options.clock = &clock_;
    return options;
  }

  void Open(Broker::Options options) {
    registry_ = std::make_unique<metrics::Registry>();
    auto broker = Broker::Open(&store_, options, registry_.get());
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
  }

  void Reopen(Broker::Options options) {
    broker_.reset();
    Open(options);
  }

  std::vector<v1::PublishResult> Publish(std::vector<CloudEvent> events) {
    absl::Notification done;
    std::vector<v1::PublishResult> out;
    broker_->Publish(std::move(events), [&](std::vector<v1::PublishResult> r) {
      out = std::move(r);
      done.Notify();
    });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    return out;
  }

  void Create(const std::string& id, const v1::Subscription& settings) {
    auto s = broker_->CreateSubscription(id, settings);
    ASSERT_TRUE(s.ok()) << s.status();
  }

  ConsumerId Attach(const std::string& id, FakeConsumer* c, int credits = 100) {
    v1::Subscription settings;
    auto r = broker_->Attach("subscriptions/" + id, credits, "test", c, &settings);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }

  v1::SubscriptionStats Stats(const std::string& id) {
    auto s = broker_->GetStats("subscriptions/" + id);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : v1::SubscriptionStats();
  }

  uint64_t FirstSequence() {
    auto info = broker_->GetStreamInfo();
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->first_sequence() : ~uint64_t{0};
  }

  // The time until the clock's next timer (a retry coming due, when no
  // lease deadline is nearer).
  absl::Duration UntilNextTimer() {
    auto next = clock_.NextDeadline();
    EXPECT_TRUE(next.has_value());
    return next.has_value() ? *next - clock_.Now() : absl::InfiniteDuration();
  }

  FakeClock clock_;
  InMemoryBrokerStore store_;
  FakeConsumer consumer_;  // outlives the broker, as a reactor that detached
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(BrokerClockTest, ALeaseExpiresAtItsDeadlineNotBeforeAndTheLateAckIsRefused) {
  Create("q", Backoff(absl::Seconds(10), 5, absl::Seconds(1), absl::Seconds(1)));
  const ConsumerId id = Attach("q", &consumer_);
  Publish({Event("e1")});
  const std::vector<v1::Delivery> first = consumer_.WaitForDeliveries(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(TimeUtil::TimestampToMilliseconds(first[0].lease_deadline()) -
                absl::ToUnixMillis(clock_.Now()),
            10000);

  clock_.Advance(absl::Seconds(10) - absl::Nanoseconds(1));  // just before: still leased
  EXPECT_EQ(Stats("q").in_flight(), 1);
  clock_.Advance(absl::Nanoseconds(1));  // at the deadline: back to the retry set
  EXPECT_EQ(Stats("q").in_flight(), 0);
  EXPECT_EQ(Stats("q").backlog(), 1);
  EXPECT_EQ(consumer_.count(), 1u);

  // Backoff min = max = 1 s: redelivered one second later, not before.
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_EQ(consumer_.count(), 1u);
  clock_.Advance(absl::Milliseconds(1));
  const std::vector<v1::Delivery> both = consumer_.WaitForDeliveries(2);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].attempt(), 2);
  EXPECT_EQ(both[1].sequence(), first[0].sequence());
  EXPECT_EQ(Stats("q").redelivered(), 1);

  broker_->Settle(id, Acks({first[0].lease_id()}), false);
  const std::vector<v1::SettleResult> refused = consumer_.WaitForResults(1);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].status().code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Stats("q").in_flight(), 1);
  broker_->Settle(id, Acks({both[1].lease_id()}), false);
  EXPECT_EQ(Stats("q").backlog(), 0);
  broker_->Detach(id);
}

TEST_F(BrokerClockTest, AnExtendedLeaseExpiresAtItsNewDeadline) {
  Create("q", Backoff(absl::Seconds(10), 5, absl::Seconds(1), absl::Seconds(1)));
  const ConsumerId id = Attach("q", &consumer_);
  Publish({Event("e1")});
  const std::vector<v1::Delivery> got = consumer_.WaitForDeliveries(1);
  ASSERT_EQ(got.size(), 1u);
  clock_.Advance(absl::Seconds(5));
  v1::Settle extend;
  v1::Extend* e = extend.add_extends();
  e->set_lease_id(got[0].lease_id());
  *e->mutable_ack_deadline() = TimeUtil::SecondsToDuration(20);
  broker_->Settle(id, extend, false);

  clock_.Advance(absl::Seconds(10));  // the original deadline passed
  EXPECT_EQ(Stats("q").in_flight(), 1);
  clock_.Advance(absl::Seconds(10) - absl::Nanoseconds(1));  // not yet 20 s after it
  EXPECT_EQ(Stats("q").in_flight(), 1);
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(Stats("q").in_flight(), 0);
  broker_->Detach(id);
}

TEST_F(BrokerClockTest, BackoffDoublesUpToItsMaximumThenTheEventIsDeadLettered) {
  // Leases far out, so the next timer after a nack is the retry's.
  const int kAttempts = 6;
  Create("q", Backoff(absl::Hours(1), kAttempts, absl::Seconds(1), absl::Seconds(8)));
  const ConsumerId id = Attach("q", &consumer_);
  Publish({Event("e1")});
  absl::Duration cap = absl::Seconds(1);
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    const std::vector<v1::Delivery> got = consumer_.WaitForDeliveries(attempt);
    ASSERT_EQ(got.size(), static_cast<size_t>(attempt));
    EXPECT_EQ(got.back().attempt(), attempt);
    v1::Settle nack;
    nack.add_nacks()->set_lease_id(got.back().lease_id());
    broker_->Settle(id, nack, false);
    if (attempt == kAttempts) break;
    // Full jitter within [min_backoff, min(min_backoff * 2^(attempt-1), max)].
    const absl::Duration wait = UntilNextTimer();
    EXPECT_GE(wait, absl::Seconds(1)) << "attempt " << attempt;
    EXPECT_LE(wait, cap) << "attempt " << attempt;
    clock_.Advance(wait - absl::Nanoseconds(1));
    EXPECT_EQ(consumer_.count(), static_cast<size_t>(attempt));
    clock_.Advance(absl::Nanoseconds(1));
    EXPECT_EQ(consumer_.count(), static_cast<size_t>(attempt + 1));
    cap = std::min(cap * 2, absl::Seconds(8));
  }
  // The last nack exhausted the attempts: a dead letter, nothing owed.
  EXPECT_EQ(Stats("q").backlog(), 0);
  auto dead = broker_->ListDeadLetters("subscriptions/q", 0, "");
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->dead_letters_size(), 1);
  EXPECT_EQ(dead->dead_letters(0).attempts(), kAttempts);
  EXPECT_EQ(dead->dead_letters(0).event().id(), "e1");
  EXPECT_EQ(TimeUtil::TimestampToNanoseconds(dead->dead_letters(0).dead_letter_time()),
            absl::ToUnixNanos(clock_.Now()));
  broker_->Detach(id);
}

TEST_F(BrokerClockTest, ANackDelayOverridesTheBackoff) {
  Create("q", Backoff(absl::Hours(1), 5, absl::Seconds(1), absl::Seconds(1)));
  const ConsumerId id = Attach("q", &consumer_);
  Publish({Event("e1")});
  const std::vector<v1::Delivery> got = consumer_.WaitForDeliveries(1);
  ASSERT_EQ(got.size(), 1u);
  v1::Settle nack;
  v1::Nack* n = nack.add_nacks();
  n->set_lease_id(got[0].lease_id());
  *n->mutable_delay() = TimeUtil::SecondsToDuration(300);
  broker_->Settle(id, nack, false);
  EXPECT_EQ(UntilNextTimer(), absl::Seconds(300));
  clock_.Advance(absl::Seconds(300) - absl::Nanoseconds(1));
  EXPECT_EQ(consumer_.count(), 1u);
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(consumer_.count(), 2u);
  broker_->Detach(id);
}

TEST_F(BrokerClockTest, MaxAgeDeadLettersAnEventNotDeliveredInTime) {
  v1::Subscription settings = Backoff(absl::Seconds(10), 5, absl::Seconds(1), absl::Seconds(1));
  *settings.mutable_max_age() = TimeUtil::SecondsToDuration(60);
  Create("q", settings);
  Publish({Event("old")});
  clock_.Advance(absl::Seconds(61));
  EXPECT_EQ(TimeUtil::DurationToSeconds(Stats("q").oldest_unacked_age()), 61);
  // Told when the backlog changes: the refill (on the reader thread) finds
  // the event too old and dead-letters it instead of delivering it.
  BacklogObserver observer;
  v1::SubscriptionStats initial;
  auto watch = broker_->WatchStats("subscriptions/q", &observer, &initial);
  ASSERT_TRUE(watch.ok()) << watch.status();
  const ConsumerId id = Attach("q", &consumer_);
  ASSERT_TRUE(observer.changed.WaitForNotificationWithTimeout(absl::Seconds(10)));
  broker_->UnwatchStats(*watch);
  EXPECT_EQ(Stats("q").backlog(), 0);
  // A listing waits for the dead-lettering the committer has queued.
  auto dead = broker_->ListDeadLetters("subscriptions/q", 0, "");
  ASSERT_TRUE(dead.ok()) << dead.status();
  ASSERT_EQ(dead->dead_letters_size(), 1);
  EXPECT_EQ(dead->dead_letters(0).last_error(), "max age exceeded");
  EXPECT_EQ(consumer_.count(), 0u);
  broker_->Detach(id);
}

TEST_F(BrokerClockTest, RetentionByAgeRemovesEachEventJustAfterItExpires) {
  Broker::Options options = Options();
  options.retention_max_age = absl::Hours(1);
  Reopen(options);
  Publish({Event("a1"), Event("a2"), Event("a3")});  // sequences 1-3 at T
  clock_.Advance(absl::Minutes(30));
  Publish({Event("b1"), Event("b2")});  // 4-5 at T+30m
  EXPECT_EQ(FirstSequence(), 1u);

  clock_.Advance(absl::Minutes(30));  // T+1h: not yet older than an hour
  EXPECT_EQ(FirstSequence(), 1u);
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(FirstSequence(), 4u);

  clock_.Advance(absl::Minutes(30));
  EXPECT_EQ(FirstSequence(), 0u);  // all gone
  auto info = broker_->GetStreamInfo();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_sequence(), 5u);
  // An empty log sets no timer until the next publish.
  EXPECT_EQ(clock_.pending(), 0u);
  Publish({Event("c1")});
  EXPECT_EQ(clock_.pending(), 1u);
}

TEST_F(BrokerClockTest, RetentionBySizeRemovesOnlyEventsNoSubscriptionOwes) {
  Broker::Options options = Options();
  options.retention_max_age = absl::ZeroDuration();
  // Far below the 40 events' size: only the unowed may go.
  options.retention_max_bytes = 500;
  Reopen(options);
  std::vector<CloudEvent> early;
  for (int i = 0; i < 20; ++i) early.push_back(Event(absl::StrCat("early", i)));
  Publish(early);  // 1-20, owed by nobody
  Create("q", Backoff(absl::Seconds(10), 5, absl::Seconds(1), absl::Seconds(1)));
  std::vector<CloudEvent> late;
  for (int i = 0; i < 20; ++i) late.push_back(Event(absl::StrCat("late", i)));
  Publish(late);  // 21-40, owed by q
  // The publishes asked for a size check now; the fake clock runs it when
  // told.
  clock_.Advance(absl::ZeroDuration());
  EXPECT_EQ(FirstSequence(), 21u);
  EXPECT_EQ(Stats("q").backlog(), 20);
  Attach("q", &consumer_);
  EXPECT_EQ(consumer_.WaitForDeliveries(20).size(), 20u);
}

TEST_F(BrokerClockTest, AcksSurviveAReopenOverTheSameStore) {
  Create("q", Backoff(absl::Seconds(10), 5, absl::Seconds(1), absl::Seconds(1)));
  std::vector<CloudEvent> events;
  for (int i = 0; i < 5; ++i) events.push_back(Event(absl::StrCat("e", i)));
  Publish(events);
  FakeConsumer& first = consumer_;
  const ConsumerId id = Attach("q", &first);
  const std::vector<v1::Delivery> got = first.WaitForDeliveries(5);
  ASSERT_EQ(got.size(), 5u);
  // Acked out of order: 1, 2 and 4; 3 and 5 stay owed.
  broker_->Settle(id, Acks({got[0].lease_id(), got[1].lease_id(), got[3].lease_id()}), true);
  ASSERT_EQ(first.WaitForResults(3).size(), 3u);
  broker_->Detach(id);
  Reopen(Options());
  EXPECT_EQ(Stats("q").backlog(), 2);
  FakeConsumer second;
  const ConsumerId id2 = Attach("q", &second);
  const std::vector<v1::Delivery> again = second.WaitForDeliveries(2);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].event().id(), "e2");
  EXPECT_EQ(again[1].event().id(), "e4");
  broker_->Detach(id2);
}

}  // namespace
}  // namespace pettube::broker
