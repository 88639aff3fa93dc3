// libs/broker_client against the real broker binary: a publisher and a
// subscriber move events end to end, failed handlers are redelivered, and
// both ride out a broker restart; a stats watcher follows a queue across
// its creation and a restart.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/publisher.h"
#include "libs/broker_client/stats_watcher.h"
#include "libs/broker_client/subscriber.h"
#include "libs/testing/child_process.h"
#include "libs/testing/service_process.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube {
namespace {

using ::pettube::testing::NewTempDir;
using ::pettube::testing::ServiceBinary;
using ::pettube::testing::ServiceProcess;
namespace v1 = ::pettube::broker::v1;

// A broker on a fixed data dir, restartable on the same port.
class Broker {
 public:
  explicit Broker(std::string data) : data_(std::move(data)) { Start("127.0.0.1:0"); }
  void Start(const std::string& listen) {
    ServiceProcess::Options options;
    options.binary = ServiceBinary("broker");
    options.listen = listen;
    options.data_dir = data_;
    options.ready_timeout = absl::Seconds(20);
    auto service = ServiceProcess::Start(std::move(options));
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
  }
  void Kill() { ASSERT_TRUE(service_->Kill().ok()); }
  const std::string& address() const { return service_->grpc(); }

 private:
  std::string data_;
  std::unique_ptr<ServiceProcess> service_;
};

void CreateSubscription(const std::string& address, const std::string& id) {
  auto stub = v1::Broker::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::CreateSubscriptionRequest req;
  req.set_subscription_id(id);
  *req.mutable_subscription()->mutable_retry_policy()->mutable_min_backoff() =
      google::protobuf::Duration();
  req.mutable_subscription()->mutable_retry_policy()->mutable_max_backoff()->set_nanos(50000000);
  v1::Subscription sub;
  ASSERT_TRUE(stub->CreateSubscription(&ctx, req, &sub).ok());
}

// Collects handled event ids; fails each event's first attempt when asked.
class Collector {
 public:
  explicit Collector(bool fail_first_attempt) : fail_first_(fail_first_attempt) {}
  absl::Status Handle(const v1::Delivery& d) {
    absl::MutexLock lock(&mu_);
    if (fail_first_ && d.attempt() == 1) return absl::InternalError("transient failure");
    ids_.insert(d.event().id());
    return absl::OkStatus();
  }
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ids_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
  }

 private:
  const bool fail_first_;
  absl::Mutex mu_;
  std::set<std::string> ids_ ABSL_GUARDED_BY(mu_);
};

io::cloudevents::v1::CloudEvent MediaEvent(int i) {
  v1::StreamInfo payload;  // any message will do as a payload
  payload.set_last_sequence(i);
  return broker_client::NewEvent("pettube.media.uploaded", "//client-test",
                                 absl::StrCat("media/", i), payload);
}

TEST(BrokerClientTest, PublisherAndSubscriberMoveEveryEventAndRetryFailures) {
  Broker broker(NewTempDir("data"));
  CreateSubscription(broker.address(), "work");
  auto channel = grpc::CreateChannel(broker.address(), grpc::InsecureChannelCredentials());
  broker_client::Publisher publisher(channel);
  for (int i = 0; i < 500; ++i) publisher.PublishAsync(MediaEvent(i), [](auto) {});
  ASSERT_TRUE(publisher.Flush(absl::Seconds(30)).ok());

  Collector collector(/*fail_first_attempt=*/true);
  broker_client::Subscriber::Options options;
  options.subscription = "subscriptions/work";
  options.consumer = "test";
  broker_client::Subscriber subscriber(channel, options);
  ASSERT_TRUE(subscriber.Start([&](const v1::Delivery& d) { return collector.Handle(d); }).ok());
  EXPECT_TRUE(collector.WaitFor(500));
  subscriber.Shutdown(absl::Seconds(5));
}

TEST(BrokerClientTest, BothSidesReconnectAfterTheBrokerRestarts) {
  const std::string data = NewTempDir("data");
  Broker broker(data);
  CreateSubscription(broker.address(), "work");
  const std::string address = broker.address();
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  broker_client::Publisher publisher(channel);
  Collector collector(false);
  broker_client::Subscriber::Options options;
  options.subscription = "subscriptions/work";
  broker_client::Subscriber subscriber(channel, options);
  ASSERT_TRUE(subscriber.Start([&](const v1::Delivery& d) { return collector.Handle(d); }).ok());
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(publisher.PublishAndWait(MediaEvent(i), absl::Seconds(10)).ok());
  ASSERT_TRUE(collector.WaitFor(100));

  broker.Kill();
  broker.Start(address);  // same port: clients reconnect by themselves
  for (int i = 100; i < 200; ++i) publisher.PublishAsync(MediaEvent(i), [](auto) {});
  ASSERT_TRUE(publisher.Flush(absl::Seconds(30)).ok());
  EXPECT_TRUE(collector.WaitFor(200));
  subscriber.Shutdown(absl::Seconds(5));
}

// Records every stats message; tests wait for one matching a condition.
class StatsLog {
 public:
  void Add(const v1::SubscriptionStats& s) {
    absl::MutexLock lock(&mu_);
    all_.push_back(s);
  }
  bool WaitFor(std::function<bool(const v1::SubscriptionStats&)> match) {
    absl::MutexLock lock(&mu_);
    size_t seen = 0;
    auto found = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (; seen < all_.size(); ++seen) {
        if (match(all_[seen])) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&found), absl::Seconds(30));
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::SubscriptionStats> all_ ABSL_GUARDED_BY(mu_);
};

TEST(BrokerClientTest, StatsWatcherFollowsAQueueFromBeforeItExistsAndAcrossARestart) {
  const std::string data = NewTempDir("data");
  Broker broker(data);
  const std::string address = broker.address();
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  StatsLog log;
  std::atomic<int> ends{0};
  broker_client::StatsWatcher::Options options;
  options.subscription = "subscriptions/jobs";
  options.min_interval = absl::Milliseconds(20);
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  options.on_stream_end = [&](const absl::Status&) { ++ends; };
  broker_client::StatsWatcher watcher(channel, options);
  // The queue does not exist yet: NOT_FOUND is retried, not fatal.
  ASSERT_TRUE(watcher.Start([&](const v1::SubscriptionStats& s) { log.Add(s); }).ok());
  EXPECT_FALSE(watcher.WaitFor(absl::Milliseconds(300)).has_value());
  EXPECT_GT(ends.load(), 0);
  CreateSubscription(address, "jobs");
  ASSERT_TRUE(log.WaitFor([](const auto& s) { return s.backlog() == 0; }));
  broker_client::Publisher publisher(channel);
  for (int i = 0; i < 5; ++i) publisher.PublishAsync(MediaEvent(i), [](auto) {});
  ASSERT_TRUE(publisher.Flush(absl::Seconds(30)).ok());
  ASSERT_TRUE(log.WaitFor([](const auto& s) { return s.backlog() == 5; }));

  broker.Kill();
  broker.Start(address);
  for (int i = 5; i < 8; ++i) publisher.PublishAsync(MediaEvent(i), [](auto) {});
  ASSERT_TRUE(publisher.Flush(absl::Seconds(30)).ok());
  EXPECT_TRUE(log.WaitFor([](const auto& s) { return s.backlog() == 8; }));
  ASSERT_TRUE(watcher.Latest().has_value());
  watcher.Shutdown();
  EXPECT_TRUE(watcher.Wait().ok());
}

}  // namespace
}  // namespace pettube
