#include "libs/broker_client/publisher.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/wrappers.pb.h>
#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/fake_broker.h"

namespace pettube::broker_client {
namespace {

using ::io::cloudevents::v1::CloudEvent;

constexpr absl::Duration kWait = absl::Seconds(8);

CloudEvent TestEvent(int i, absl::string_view type = "pettube.test.happened") {
  google::protobuf::Int32Value payload;
  payload.set_value(i);
  return NewEvent(type, "//pettube/test", absl::StrCat("item/", i), payload);
}

// Collects the results of PublishAsync callbacks, by index.
class Results {
 public:
  explicit Results(int n) : results_(n) {}

  PublishCallback Callback(int i) {
    return [this, i](absl::StatusOr<PublishResult> result) {
      absl::MutexLock lock(&mu_);
      EXPECT_FALSE(results_[i].has_value()) << "callback " << i << " called twice";
      results_[i] = std::move(result);
      ++settled_;
    };
  }

  // Waits until every callback has run.
  bool WaitAll(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const auto all = [this]() {
      mu_.AssertReaderHeld();
      return settled_ == static_cast<int>(results_.size());
    };
    return mu_.AwaitWithTimeout(absl::Condition(&all), timeout);
  }

  absl::StatusOr<PublishResult> Get(int i) {
    absl::MutexLock lock(&mu_);
    return results_[i].value_or(absl::UnknownError("not settled"));
  }

 private:
  absl::Mutex mu_;
  std::vector<std::optional<absl::StatusOr<PublishResult>>> results_ ABSL_GUARDED_BY(mu_);
  int settled_ ABSL_GUARDED_BY(mu_) = 0;
};

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = FakeBrokerServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  FakeBroker& broker() { return server_->broker(); }

  static Publisher::Options FastRetries() {
    Publisher::Options options;
    options.initial_backoff = absl::Milliseconds(10);
    options.max_backoff = absl::Milliseconds(100);
    return options;
  }

  std::unique_ptr<FakeBrokerServer> server_;
};

TEST_F(PublisherTest, ManyAsyncEventsAreAllAckedInFewRequests) {
  constexpr int kEvents = 3000;
  Publisher publisher(server_->NewChannel(), FastRetries());
  Results results(kEvents);
  for (int i = 0; i < kEvents; ++i) publisher.PublishAsync(TestEvent(i), results.Callback(i));
  ASSERT_TRUE(results.WaitAll(kWait));

  absl::flat_hash_set<uint64_t> sequences;
  for (int i = 0; i < kEvents; ++i) {
    const auto result = results.Get(i);
    ASSERT_TRUE(result.ok()) << i << ": " << result.status();
    EXPECT_FALSE(result->duplicate);
    sequences.insert(result->sequence);
  }
  EXPECT_EQ(sequences.size(), static_cast<size_t>(kEvents));
  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_EQ(stats.stored, kEvents);
  EXPECT_EQ(stats.duplicates, 0);
  EXPECT_EQ(stats.publish_streams, 1);
  // Events handed in while a write was in flight went out together.
  EXPECT_LT(stats.publish_requests, kEvents);
  EXPECT_LE(stats.max_unacked, 1024);
}

TEST_F(PublisherTest, BrokenStreamIsRetriedWithTheSameIdsAndNothingIsStoredTwice) {
  constexpr int kEvents = 500;
  // The stream dies right after storing its 100th event, whose ack (and
  // its request's others) is lost: those must come back as duplicates.
  broker().BreakPublishStreamAfter(100);
  Publisher publisher(server_->NewChannel(), FastRetries());
  Results results(kEvents);
  std::vector<std::string> ids;
  for (int i = 0; i < kEvents; ++i) {
    CloudEvent event = TestEvent(i);
    ids.push_back(event.id());
    publisher.PublishAsync(std::move(event), results.Callback(i));
  }
  ASSERT_TRUE(results.WaitAll(kWait));

  const std::vector<CloudEvent> stored = broker().StoredEvents();
  ASSERT_EQ(stored.size(), static_cast<size_t>(kEvents));
  int duplicates = 0;
  for (int i = 0; i < kEvents; ++i) {
    const auto result = results.Get(i);
    ASSERT_TRUE(result.ok()) << i << ": " << result.status();
    if (result->duplicate) ++duplicates;
    // The sequence is that of this very event (of its first copy).
    ASSERT_GE(result->sequence, 1u);
    EXPECT_EQ(stored[result->sequence - 1].id(), ids[i]) << i;
  }
  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_GE(stats.publish_streams, 2);
  EXPECT_GE(stats.duplicates, 1);
  EXPECT_EQ(duplicates, stats.duplicates);
  // Every resend carried an id first given to the publisher.
  const absl::flat_hash_set<std::string> known(ids.begin(), ids.end());
  const auto received = broker().ReceivedKeys();
  EXPECT_GT(received.size(), static_cast<size_t>(kEvents));
  for (const auto& [source, id] : received) {
    EXPECT_EQ(source, "//pettube/test");
    EXPECT_TRUE(known.contains(id)) << id;
  }
}

TEST_F(PublisherTest, PerEventErrorGoesOnlyToThatEventsCallback) {
  constexpr int kEvents = 20;
  constexpr int kRejected = 7;
  broker().SetEventRule([](const CloudEvent& event) {
    if (event.type() == "pettube.test.rejected") {
      return absl::InvalidArgumentError("event.type: \"pettube.test.rejected\" is refused");
    }
    return absl::OkStatus();
  });
  Publisher publisher(server_->NewChannel(), FastRetries());
  Results results(kEvents);
  for (int i = 0; i < kEvents; ++i) {
    publisher.PublishAsync(
        TestEvent(i, i == kRejected ? "pettube.test.rejected" : "pettube.test.happened"),
        results.Callback(i));
  }
  ASSERT_TRUE(results.WaitAll(kWait));

  for (int i = 0; i < kEvents; ++i) {
    const auto result = results.Get(i);
    if (i == kRejected) {
      EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(result.status().message(), "event.type: \"pettube.test.rejected\" is refused");
    } else {
      EXPECT_TRUE(result.ok()) << i << ": " << result.status();
    }
  }
  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_EQ(stats.stored, kEvents - 1);
  // A refused event is not a stream failure: nothing was retried.
  EXPECT_EQ(stats.publish_streams, 1);
  EXPECT_EQ(stats.events_received, kEvents);
}

TEST_F(PublisherTest, PublishAndWaitReturnsSequenceAndRepublishIsADuplicate) {
  Publisher publisher(server_->NewChannel(), FastRetries());
  const CloudEvent event = TestEvent(1);
  const auto first = publisher.PublishAndWait(event, kWait);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->sequence, 1u);
  EXPECT_FALSE(first->duplicate);

  const auto again = publisher.PublishAndWait(event, kWait);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->sequence, 1u);
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(broker().GetStats().stored, 1);
}

TEST_F(PublisherTest, EmptyIdIsFilledWhenAccepted) {
  Publisher publisher(server_->NewChannel(), FastRetries());
  CloudEvent event = TestEvent(1);
  event.clear_id();
  ASSERT_TRUE(publisher.PublishAndWait(event, kWait).ok());
  const std::vector<CloudEvent> stored = broker().StoredEvents();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].id().size(), 36u);
}

TEST_F(PublisherTest, WindowBoundsUnackedEventsAndFlushWaitsForAll) {
  constexpr int kEvents = 50;
  broker().HoldPublishAcks();
  Publisher::Options options = FastRetries();
  options.max_outstanding = 8;
  Publisher publisher(server_->NewChannel(), options);
  Results results(kEvents);
  for (int i = 0; i < kEvents; ++i) publisher.PublishAsync(TestEvent(i), results.Callback(i));

  ASSERT_TRUE(broker().WaitUntil(
      [](const FakeBroker::Stats& s) { return s.events_received >= 8; }, kWait));
  // Nothing is acked, so Flush cannot finish; meanwhile no ninth event may
  // go out.
  const absl::Status flushed = publisher.Flush(absl::Milliseconds(300));
  EXPECT_EQ(flushed.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(flushed.message().find("50 events"), absl::string_view::npos) << flushed;
  EXPECT_EQ(broker().GetStats().events_received, 8);

  broker().ReleasePublishAcks();
  ASSERT_TRUE(publisher.Flush(kWait).ok());
  // Flush returns after the callbacks ran.
  ASSERT_TRUE(results.WaitAll(absl::ZeroDuration()));
  const FakeBroker::Stats stats = broker().GetStats();
  EXPECT_EQ(stats.stored, kEvents);
  EXPECT_LE(stats.max_unacked, 8);
}

TEST_F(PublisherTest, ShutdownDrainsEventsInFlight) {
  constexpr int kEvents = 200;
  Results results(kEvents);
  {
    Publisher publisher(server_->NewChannel(), FastRetries());
    for (int i = 0; i < kEvents; ++i) publisher.PublishAsync(TestEvent(i), results.Callback(i));
    publisher.Shutdown(kWait);
    // Every callback ran before Shutdown returned.
    ASSERT_TRUE(results.WaitAll(absl::ZeroDuration()));
  }
  for (int i = 0; i < kEvents; ++i) EXPECT_TRUE(results.Get(i).ok()) << i;
  EXPECT_EQ(broker().GetStats().stored, kEvents);
}

TEST_F(PublisherTest, ShutdownCancelsWhatTheBrokerNeverAckedAndRefusesNewEvents) {
  broker().HoldPublishAcks();
  Publisher publisher(server_->NewChannel(), FastRetries());
  Results results(3);
  for (int i = 0; i < 3; ++i) publisher.PublishAsync(TestEvent(i), results.Callback(i));
  ASSERT_TRUE(broker().WaitUntil(
      [](const FakeBroker::Stats& s) { return s.events_received == 3; }, kWait));
  publisher.Shutdown(absl::Milliseconds(50));
  ASSERT_TRUE(results.WaitAll(absl::ZeroDuration()));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(results.Get(i).status().code(), absl::StatusCode::kCancelled) << i;
  }
  const auto late = publisher.PublishAndWait(TestEvent(9), kWait);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PublisherWithoutBrokerTest, PermanentStreamFailureFailsTheEventsInsteadOfRetrying) {
  // The generated base service answers UNIMPLEMENTED (as the broker binary
  // did before its logic landed): retrying would never help.
  pettube::broker::v1::Broker::Service unimplemented;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&unimplemented);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_NE(port, 0);
  {
    Publisher publisher(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    const auto result = publisher.PublishAndWait(TestEvent(1), kWait);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnimplemented) << result.status();
  }
  server->Shutdown();
}

TEST_F(PublisherTest, MetadataHookSeesEveryStream) {
  absl::Mutex mu;
  int calls = 0;
  Publisher::Options options = FastRetries();
  options.configure_context = [&](grpc::ClientContext& context) {
    context.AddMetadata("authorization", "Bearer test");
    absl::MutexLock lock(&mu);
    ++calls;
  };
  broker().BreakPublishStreamAfter(1);
  Publisher publisher(server_->NewChannel(), options);
  ASSERT_TRUE(publisher.PublishAndWait(TestEvent(1), kWait).ok());
  absl::MutexLock lock(&mu);
  EXPECT_EQ(calls, 2);  // the broken stream and its replacement
}

}  // namespace
}  // namespace pettube::broker_client
