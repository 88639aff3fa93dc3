// Admin calls never block a request thread and never hold the broker's
// lock across I/O: changes answer from the committer's completion, seek
// scans the log off the lock, redrive paces itself with a timer. Over the
// in-memory store with a FakeClock, a HookedStore holding writes and scans
// where a test needs to act inside them.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/metrics/registry.h"
#include "services/broker/broker.h"
#include "services/broker/broker_test_util.h"
#include "services/broker/fake_clock.h"
#include "services/broker/hooked_store.h"
#include "services/broker/in_memory_broker_store.h"

namespace pettube::broker {
namespace {

// Counts stats changes; a test waits for the backlog it expects.
class BacklogWaiter : public StatsObserver {
 public:
  void StatsChanged() override {
    absl::MutexLock lock(&mu_);
    ++changes_;
  }
  void Close(const absl::Status&) override {}
  // Waits (pushed, bounded) until `broker` reports `backlog` for `name`.
  bool WaitForBacklog(Broker& broker, const std::string& name, int64_t backlog) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    for (;;) {
      int seen;
      {
        absl::MutexLock lock(&mu_);
        seen = changes_;
      }
      auto stats = broker.GetStats(name);
      if (stats.ok() && stats->backlog() == backlog) return true;
      absl::MutexLock lock(&mu_);
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return changes_ != seen; };
      if (!mu_.AwaitWithDeadline(absl::Condition(&changed), deadline)) return false;
    }
  }

 private:
  absl::Mutex mu_;
  int changes_ ABSL_GUARDED_BY(mu_) = 0;
};

class BrokerAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Broker::Options options;
    options.sync = false;
    options.clock = &clock_;
    auto broker = Broker::Open(&store_, options, &registry_);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
  }
  void TearDown() override {
    store_.SetWriteHook(nullptr);
    store_.SetScanEventsHook(nullptr);
    broker_.reset();
  }

  void Publish(std::vector<CloudEvent> events) {
    absl::Notification done;
    broker_->Publish(std::move(events), [&](std::vector<v1::PublishResult>) { done.Notify(); });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }

  // `n` dead letters in subscription "q" (one attempt allowed, nacked).
  void MakeDeadLetters(int n) {
    ASSERT_TRUE(broker_->CreateSubscription("q", Settings(absl::Seconds(30), 1)).ok());
    std::vector<CloudEvent> events;
    for (int i = 0; i < n; ++i) events.push_back(Event(absl::StrCat("e", i)));
    Publish(events);
    FakeConsumer c;
    v1::Subscription settings;
    auto id = broker_->Attach("subscriptions/q", 100, "test", &c, &settings);
    ASSERT_TRUE(id.ok());
    v1::Settle nacks;
    for (const auto& d : c.WaitForDeliveries(n)) nacks.add_nacks()->set_lease_id(d.lease_id());
    broker_->Settle(*id, nacks, false);
    broker_->Detach(*id);
    auto dead = broker_->ListDeadLetters("subscriptions/q", 0, "");
    ASSERT_TRUE(dead.ok());
    ASSERT_EQ(dead->dead_letters_size(), n);
  }

  FakeClock clock_;
  InMemoryBrokerStore memory_;
  HookedStore store_{&memory_};
  metrics::Registry registry_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(BrokerAdminTest, ChangesAnswerFromTheCommitterOnlyOnceWritten) {
  absl::Notification writing, release;
  store_.SetWriteHook([&](BrokerStore::Batch&) {
    if (!writing.HasBeenNotified()) writing.Notify();
    release.WaitForNotification();
    return absl::OkStatus();
  });
  absl::Notification answered;
  absl::StatusOr<v1::Subscription> created;
  std::thread::id answered_on;
  broker_->CreateSubscription("q", Settings(), Access::Unchecked(),
                              [&](absl::StatusOr<v1::Subscription> r) {
                                created = std::move(r);
                                answered_on = std::this_thread::get_id();
                                answered.Notify();
                              });
  // The call returned while its write is held: the caller did not wait.
  ASSERT_TRUE(writing.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(answered.HasBeenNotified());
  release.Notify();
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->name(), "subscriptions/q");
  EXPECT_NE(answered_on, std::this_thread::get_id());

  // A refused change answers at once, on the caller's thread.
  absl::Status deleted = absl::UnknownError("not answered");
  broker_->DeleteSubscription("not a name", Access::Unchecked(),
                              [&](absl::Status s) { deleted = s; });
  EXPECT_EQ(deleted.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerAdminTest, SeekScansTheLogOffTheLock) {
  ASSERT_TRUE(broker_->CreateSubscription("q", Settings()).ok());
  Publish({Event("a"), Event("b"), Event("c")});
  absl::Notification scanning, release;
  store_.SetScanEventsHook([&] {
    if (!scanning.HasBeenNotified()) scanning.Notify();
    release.WaitForNotification();
    return absl::OkStatus();
  });
  absl::Notification answered;
  absl::StatusOr<v1::Subscription> sought;
  v1::StartPosition earliest;
  earliest.mutable_earliest();
  broker_->Seek("subscriptions/q", earliest, Access::Unchecked(),
                [&](absl::StatusOr<v1::Subscription> r) {
                  sought = std::move(r);
                  answered.Notify();
                });
  ASSERT_TRUE(scanning.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // Mid-scan the broker's lock is free: reads and attaches go on.
  auto got = broker_->GetSubscription("subscriptions/q");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->stats().backlog(), 3);
  FakeConsumer c;
  v1::Subscription settings;
  auto id = broker_->Attach("subscriptions/q", 10, "test", &c, &settings);
  ASSERT_TRUE(id.ok()) << id.status();
  release.Notify();
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(sought.ok()) << sought.status();
  EXPECT_EQ(sought->stats().backlog(), 3);
  broker_->Detach(*id);
}

TEST_F(BrokerAdminTest, RedriveTakesAChunkPerSecondOnTheClock) {
  MakeDeadLetters(5);
  BacklogWaiter waiter;
  v1::SubscriptionStats initial;
  auto watch = broker_->WatchStats("subscriptions/q", &waiter, &initial);
  ASSERT_TRUE(watch.ok());
  absl::Notification answered;
  absl::StatusOr<int64_t> moved;
  broker_->Redrive("subscriptions/q", 0, 2, Access::Unchecked(), [&](absl::StatusOr<int64_t> r) {
    moved = std::move(r);
    answered.Notify();
  });
  ASSERT_TRUE(waiter.WaitForBacklog(*broker_, "subscriptions/q", 2));
  // The next chunk waits for the clock, not on a thread.
  clock_.Advance(absl::Seconds(1) - absl::Nanoseconds(1));
  EXPECT_EQ(broker_->GetStats("subscriptions/q")->backlog(), 2);
  EXPECT_FALSE(answered.HasBeenNotified());
  clock_.Advance(absl::Nanoseconds(1));
  ASSERT_TRUE(waiter.WaitForBacklog(*broker_, "subscriptions/q", 4));
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, 5);
  EXPECT_EQ(broker_->GetStats("subscriptions/q")->backlog(), 5);
  broker_->UnwatchStats(*watch);
}

TEST_F(BrokerAdminTest, RedriveAnswersWithWhatItMovedWhenTheBrokerDrains) {
  MakeDeadLetters(5);
  BacklogWaiter waiter;
  v1::SubscriptionStats initial;
  auto watch = broker_->WatchStats("subscriptions/q", &waiter, &initial);
  ASSERT_TRUE(watch.ok());
  absl::Notification answered;
  absl::StatusOr<int64_t> moved;
  broker_->Redrive("subscriptions/q", 0, 2, Access::Unchecked(), [&](absl::StatusOr<int64_t> r) {
    moved = std::move(r);
    answered.Notify();
  });
  ASSERT_TRUE(waiter.WaitForBacklog(*broker_, "subscriptions/q", 2));
  broker_->UnwatchStats(*watch);
  const size_t timers = clock_.pending();  // the redrive's, and lease and retention timers
  broker_->Drain();
  ASSERT_TRUE(answered.HasBeenNotified());
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(*moved, 2);
  EXPECT_EQ(clock_.pending(), timers - 1);  // the redrive's timer is gone
}

}  // namespace
}  // namespace pettube::broker
