#include "libs/broker_client/subscriber.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/wrappers.pb.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/fake_broker.h"

namespace pettube::broker_client {
namespace {

using ::io::cloudevents::v1::CloudEvent;

constexpr absl::Duration kWait = absl::Seconds(8);
constexpr char kSubscription[] = "subscriptions/test";

CloudEvent TestEvent(int i) {
  google::protobuf::Int32Value payload;
  payload.set_value(i);
  return NewEvent("pettube.test.happened", "//pettube/test", absl::StrCat("item/", i), payload);
}

int ItemOf(const Delivery& delivery) {
  google::protobuf::Int32Value payload;
  EXPECT_TRUE(UnpackPayload(delivery.event(), &payload).ok());
  return payload.value();
}

class SubscriberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = FakeBrokerServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    broker().AddSubscription(kSubscription);
  }

  FakeBroker& broker() { return server_->broker(); }

  void AppendEvents(int from, int to) {
    for (int i = from; i < to; ++i) broker().Append(TestEvent(i));
  }

  bool WaitForAcks(int64_t acks) {
    return broker().WaitUntil([acks](const FakeBroker::Stats& s) { return s.acks >= acks; },
                              kWait);
  }

  static Subscriber::Options TestOptions(std::string subscription = kSubscription) {
    Subscriber::Options options;
    options.subscription = std::move(subscription);
    options.consumer = "subscriber-test";
    options.initial_backoff = absl::Milliseconds(10);
    options.max_backoff = absl::Milliseconds(100);
    options.shutdown_grace = kWait;
    return options;
  }

  std::unique_ptr<FakeBrokerServer> server_;
};

TEST_F(SubscriberTest, AcksSuccessfulHandlersAndNacksFailedOnesWithTheMessage) {
  constexpr int kEvents = 10;
  AppendEvents(0, kEvents);
  Subscriber subscriber(server_->NewChannel(), TestOptions());
  // Odd items fail on their first attempt and succeed on the redelivery.
  ASSERT_TRUE(subscriber
                  .Start([](const Delivery& delivery) {
                    const int item = ItemOf(delivery);
                    if (item % 2 == 1 && delivery.attempt() == 1) {
                      return absl::InternalError(absl::StrCat("cannot handle item ", item));
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(WaitForAcks(kEvents));
  subscriber.Shutdown(kWait);

  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_EQ(stats.acks, kEvents);
  EXPECT_EQ(stats.nacks, kEvents / 2);
  EXPECT_EQ(stats.redeliveries, kEvents / 2);
  EXPECT_EQ(stats.refused_settlements, 0);
  std::vector<std::string> errors = stats.nack_errors;
  std::sort(errors.begin(), errors.end());
  EXPECT_EQ(errors, (std::vector<std::string>{"cannot handle item 1", "cannot handle item 3",
                                              "cannot handle item 5", "cannot handle item 7",
                                              "cannot handle item 9"}));
  EXPECT_TRUE(subscriber.Wait().ok());
}

TEST_F(SubscriberTest, HandlerConcurrencyReachesButNeverExceedsTheBound) {
  constexpr int kEvents = 30;
  constexpr int kConcurrency = 3;
  AppendEvents(0, kEvents);
  absl::Mutex mu;
  int running = 0;
  int most = 0;
  bool reached = false;
  Subscriber::Options options = TestOptions();
  options.max_in_flight = 16;
  options.handler_concurrency = kConcurrency;
  Subscriber subscriber(server_->NewChannel(), options);
  ASSERT_TRUE(subscriber
                  .Start([&](const Delivery&) {
                    absl::MutexLock lock(&mu);
                    ++running;
                    most = std::max(most, running);
                    if (running == kConcurrency) reached = true;
                    // The first handlers wait for each other, so the bound
                    // is surely reached; with a deadline, in case it cannot.
                    mu.AwaitWithTimeout(absl::Condition(&reached), kWait);
                    --running;
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(WaitForAcks(kEvents));
  subscriber.Shutdown(kWait);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(most, kConcurrency);
  EXPECT_LE(broker().GetStats().max_leased, 16);
}

TEST_F(SubscriberTest, CreditsAreGrantedBackAsHandlersFinish) {
  constexpr int kEvents = 40;
  AppendEvents(0, kEvents);
  Subscriber::Options options = TestOptions();
  options.max_in_flight = 2;
  Subscriber subscriber(server_->NewChannel(), options);
  ASSERT_TRUE(subscriber.Start([](const Delivery&) { return absl::OkStatus(); }).ok());
  // With only 2 credits from Attach, 40 events need credits granted back.
  ASSERT_TRUE(WaitForAcks(kEvents));
  subscriber.Shutdown(kWait);
  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_EQ(stats.deliveries, kEvents);
  EXPECT_LE(stats.max_leased, 2);
  EXPECT_GE(stats.credits_granted, kEvents - 2);
  EXPECT_GE(stats.flow_messages, 1);
  EXPECT_EQ(stats.refused_requests, 0);
}

TEST_F(SubscriberTest, SettlementsDueTogetherGoOutInOneMessage) {
  // Five deliveries leased at once fall due for extension at once: one
  // Settle carries all five extensions, not five messages.
  constexpr int kEvents = 5;
  broker().AddSubscription("subscriptions/short-lease", absl::Milliseconds(300));
  AppendEvents(0, kEvents);
  Subscriber::Options options = TestOptions("subscriptions/short-lease");
  options.max_in_flight = kEvents;
  Subscriber subscriber(server_->NewChannel(), options);
  ASSERT_TRUE(subscriber
                  .Start([&](const Delivery&) {
                    EXPECT_TRUE(broker().WaitUntil(
                        [](const FakeBroker::Stats& s) { return s.extends >= kEvents; }, kWait));
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(WaitForAcks(kEvents));
  subscriber.Shutdown(kWait);
  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_GE(stats.max_settle_batch, kEvents);
  EXPECT_EQ(stats.expired, 0);
}

TEST_F(SubscriberTest, ShutdownLetsTheRunningHandlerFinishAndLeavesTheRestToTheBroker) {
  constexpr int kEvents = 4;
  AppendEvents(0, kEvents);
  absl::Notification first_started;
  absl::Notification release;
  absl::Mutex mu;
  std::vector<int> handled;
  Subscriber::Options options = TestOptions();
  options.max_in_flight = kEvents;
  options.handler_concurrency = 1;
  Subscriber subscriber(server_->NewChannel(), options);
  ASSERT_TRUE(subscriber
                  .Start([&](const Delivery& delivery) {
                    {
                      absl::MutexLock lock(&mu);
                      handled.push_back(ItemOf(delivery));
                    }
                    first_started.Notify();
                    release.WaitForNotificationWithTimeout(kWait);
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(first_started.WaitForNotificationWithTimeout(kWait));
  // All four are leased to us: one running, three waiting for the thread.
  ASSERT_TRUE(broker().WaitUntil(
      [](const FakeBroker::Stats& s) { return s.deliveries == kEvents; }, kWait));

  absl::Notification shut_down;
  std::thread closer([&] {
    subscriber.Shutdown(kWait);
    shut_down.Notify();
  });
  // Shutdown waits for the running handler...
  EXPECT_FALSE(shut_down.WaitForNotificationWithTimeout(absl::Milliseconds(300)));
  release.Notify();
  // ...and returns once it is done and its ack is written.
  EXPECT_TRUE(shut_down.WaitForNotificationWithTimeout(kWait));
  closer.join();

  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_EQ(stats.acks, 1);
  EXPECT_EQ(stats.released, kEvents - 1);
  EXPECT_EQ(stats.nacks, 0);
  absl::MutexLock lock(&mu);
  EXPECT_EQ(handled.size(), 1u);
  EXPECT_TRUE(subscriber.Wait().ok());
}

TEST_F(SubscriberTest, LeaseIsExtendedWhileAHandlerRunsLong) {
  broker().AddSubscription("subscriptions/short-lease", absl::Milliseconds(300));
  AppendEvents(0, 1);
  Subscriber subscriber(server_->NewChannel(), TestOptions("subscriptions/short-lease"));
  ASSERT_TRUE(subscriber
                  .Start([&](const Delivery& delivery) {
                    // Runs for more than two lease lengths: until the
                    // broker has seen two extensions of this lease.
                    const std::string lease_id = delivery.lease_id();
                    EXPECT_TRUE(broker().WaitUntil(
                        [](const FakeBroker::Stats& s) { return s.extends >= 2; }, kWait));
                    EXPECT_GE(broker().ExtendsOf(lease_id), 2);
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE(WaitForAcks(1));
  subscriber.Shutdown(kWait);
  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_EQ(stats.expired, 0);
  EXPECT_EQ(stats.redeliveries, 0);
  EXPECT_EQ(stats.refused_settlements, 0);
}

TEST_F(SubscriberTest, ReattachesAfterTheStreamBreaks) {
  AppendEvents(0, 5);
  Subscriber subscriber(server_->NewChannel(), TestOptions());
  ASSERT_TRUE(subscriber.Start([](const Delivery&) { return absl::OkStatus(); }).ok());
  ASSERT_TRUE(WaitForAcks(5));
  broker().BreakSubscribeStreams();
  AppendEvents(5, 10);
  ASSERT_TRUE(WaitForAcks(10));
  EXPECT_GE(broker().GetStats().attaches, 2);
  EXPECT_FALSE(subscriber.WaitFor(absl::ZeroDuration()).has_value());
}

TEST_F(SubscriberTest, MissingSubscriptionStopsTheSubscriberWithNotFound) {
  absl::Notification stopped;
  absl::Status reported;
  Subscriber::Options options = TestOptions("subscriptions/nope");
  options.on_stopped = [&](const absl::Status& status) {
    reported = status;
    stopped.Notify();
  };
  Subscriber subscriber(server_->NewChannel(), options);
  ASSERT_TRUE(subscriber.Start([](const Delivery&) { return absl::OkStatus(); }).ok());
  const std::optional<absl::Status> result = subscriber.WaitFor(kWait);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->code(), absl::StatusCode::kNotFound) << *result;
  EXPECT_NE(result->message().find("subscriptions/nope"), absl::string_view::npos) << *result;
  ASSERT_TRUE(stopped.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(reported.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker().GetStats().attaches, 0);
}

TEST_F(SubscriberTest, StartRefusesBadOptionsAndASecondCall) {
  Subscriber::Options bad = TestOptions();
  bad.max_in_flight = 0;
  Subscriber refused(server_->NewChannel(), bad);
  const absl::Status status = refused.Start([](const Delivery&) { return absl::OkStatus(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("max_in_flight"), absl::string_view::npos) << status;

  Subscriber subscriber(server_->NewChannel(), TestOptions());
  ASSERT_TRUE(subscriber.Start([](const Delivery&) { return absl::OkStatus(); }).ok());
  EXPECT_EQ(subscriber.Start([](const Delivery&) { return absl::OkStatus(); }).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pettube::broker_client
