// WatchSubscriptionStats through the real BrokerService, in process on
// 127.0.0.1:0: the first message at once, then one per change, coalesced
// to the interval, nothing while idle; NOT_FOUND on delete, OK on drain.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "services/broker/broker_service.h"
#include "services/broker/broker_test_util.h"

namespace pettube::broker {
namespace {

class WatchStatsTest : public BrokerTest {
 protected:
  void SetUp() override {
    BrokerTest::SetUp();
    service_ = std::make_unique<BrokerService>(*broker_, nullptr);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Broker::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    broker_->Drain();  // ends open watches
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  using Reader = grpc::ClientReader<v1::SubscriptionStats>;
  std::unique_ptr<Reader> Watch(grpc::ClientContext* ctx, const std::string& id,
                                absl::Duration interval, absl::Duration deadline) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    v1::WatchSubscriptionStatsRequest req;
    req.set_name("subscriptions/" + id);
    *req.mutable_min_interval() =
        TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(interval));
    return stub_->WatchSubscriptionStats(ctx, req);
  }

  std::unique_ptr<BrokerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Broker::Stub> stub_;
};

TEST_F(WatchStatsTest, SendsStatsAtOnceThenOnChangeAndNothingWhileIdle) {
  Create("q");
  Publish({Event("a"), Event("b")});
  grpc::ClientContext ctx;
  // The deadline ends the idle stream: every message it carried is counted.
  auto reader = Watch(&ctx, "q", absl::Milliseconds(20), absl::Seconds(2));
  v1::SubscriptionStats stats;
  ASSERT_TRUE(reader->Read(&stats));
  EXPECT_EQ(stats.backlog(), 2);
  EXPECT_EQ(stats.in_flight(), 0);
  Publish({Event("c")});
  ASSERT_TRUE(reader->Read(&stats));
  EXPECT_EQ(stats.backlog(), 3);
  FakeConsumer& consumer = NewConsumer();
  const ConsumerId c = Attach("q", &consumer, /*credits=*/1);
  ASSERT_TRUE(reader->Read(&stats));
  EXPECT_EQ(stats.in_flight(), 1);
  EXPECT_EQ(stats.consumers(), 1);
  broker_->Settle(c, Acks({consumer.WaitForDeliveries(1)[0].lease_id()}), false);
  // Credits are spent: the ack leaves backlog 2, nothing in flight.
  ASSERT_TRUE(reader->Read(&stats));
  EXPECT_EQ(stats.backlog(), 2);
  EXPECT_EQ(stats.in_flight(), 0);
  // Nothing changes from here: no message until the deadline.
  EXPECT_FALSE(reader->Read(&stats)) << stats.DebugString();
  EXPECT_EQ(reader->Finish().error_code(), grpc::DEADLINE_EXCEEDED);
  broker_->Detach(c);
}

TEST_F(WatchStatsTest, ABurstOfChangesIsCoalescedToOneMessagePerInterval) {
  Create("q");
  grpc::ClientContext ctx;
  const absl::Duration interval = absl::Milliseconds(300);
  auto reader = Watch(&ctx, "q", interval, absl::Seconds(20));
  v1::SubscriptionStats stats;
  ASSERT_TRUE(reader->Read(&stats));
  EXPECT_EQ(stats.backlog(), 0);
  const absl::Time start = absl::Now();
  constexpr int kEvents = 40;
  for (int i = 0; i < kEvents; ++i) Publish({Event(absl::StrCat("e", i))});
  const absl::Duration burst = absl::Now() - start;
  std::vector<absl::Time> arrivals;
  while (stats.backlog() < kEvents) {
    ASSERT_TRUE(reader->Read(&stats));
    arrivals.push_back(absl::Now());
  }
  EXPECT_EQ(stats.backlog(), kEvents);
  // At most one message per interval (the first change goes at once), and
  // far fewer than one per change.
  EXPECT_LE(arrivals.size(), 2 + static_cast<size_t>(burst / interval)) << burst;
  EXPECT_LT(arrivals.size(), static_cast<size_t>(kEvents));
  for (size_t i = 1; i < arrivals.size(); ++i) {
    // Sent at least `interval` apart; arrival jitter is far below 100 ms.
    EXPECT_GE(arrivals[i] - arrivals[i - 1], interval - absl::Milliseconds(100));
  }
  ctx.TryCancel();
}

TEST_F(WatchStatsTest, DeletedSubscriptionEndsTheWatchWithNotFound) {
  Create("q");
  grpc::ClientContext ctx;
  auto reader = Watch(&ctx, "q", absl::Milliseconds(100), absl::Seconds(10));
  v1::SubscriptionStats stats;
  ASSERT_TRUE(reader->Read(&stats));
  ASSERT_TRUE(broker_->DeleteSubscription("subscriptions/q").ok());
  EXPECT_FALSE(reader->Read(&stats));
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND) << s.error_message();
}

TEST_F(WatchStatsTest, DrainEndsTheWatchCleanly) {
  Create("q");
  grpc::ClientContext ctx;
  auto reader = Watch(&ctx, "q", absl::Milliseconds(100), absl::Seconds(10));
  v1::SubscriptionStats stats;
  ASSERT_TRUE(reader->Read(&stats));
  broker_->Drain();
  EXPECT_FALSE(reader->Read(&stats));
  const grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(WatchStatsTest, UnknownSubscriptionAndTooShortIntervalAreRefused) {
  {
    grpc::ClientContext ctx;
    auto reader = Watch(&ctx, "nope", absl::Milliseconds(100), absl::Seconds(10));
    v1::SubscriptionStats stats;
    EXPECT_FALSE(reader->Read(&stats));
    EXPECT_EQ(reader->Finish().error_code(), grpc::NOT_FOUND);
  }
  Create("q");
  grpc::ClientContext ctx;
  auto reader = Watch(&ctx, "q", absl::Milliseconds(5), absl::Seconds(10));
  v1::SubscriptionStats stats;
  EXPECT_FALSE(reader->Read(&stats));
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("min_interval"), std::string::npos) << s.error_message();
}

TEST_F(WatchStatsTest, ManyWatchersComeAndGoWithoutLeakingWatches) {
  Create("q");
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext ctx;
    auto reader = Watch(&ctx, "q", absl::Milliseconds(10), absl::Seconds(10));
    v1::SubscriptionStats stats;
    ASSERT_TRUE(reader->Read(&stats));
    Publish({Event(absl::StrCat("w", i))});
    ASSERT_TRUE(reader->Read(&stats));
    EXPECT_EQ(stats.backlog(), i + 1);
    ctx.TryCancel();
    while (reader->Read(&stats)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::CANCELLED);
  }
}

}  // namespace
}  // namespace pettube::broker
