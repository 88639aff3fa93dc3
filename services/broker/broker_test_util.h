#pragma once

// Shared by the broker core's tests: a fake consumer, event and settings
// helpers, and a fixture owning a broker over real RocksDB in
// $TEST_TMPDIR.

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "libs/metrics/registry.h"
#include "services/broker/broker.h"
#include "services/broker/rocksdb_broker_store.h"

namespace pettube::broker {

using google::protobuf::util::TimeUtil;

// Records what the broker pushes; tests wait on it with deadlines.
class FakeConsumer : public Consumer {
 public:
  void Deliver(OutboundDelivery delivery) override {
    absl::MutexLock lock(&mu_);
    deliveries_.push_back(ToProto(delivery));
  }
  void SettleResults(std::vector<v1::SettleResult> results) override {
    absl::MutexLock lock(&mu_);
    for (auto& r : results) results_.push_back(std::move(r));
  }
  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    closed_ = status;
  }

  // Waits until at least `n` deliveries arrived (or 10 s passed).
  std::vector<v1::Delivery> WaitForDeliveries(size_t n,
                                              absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return deliveries_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
    return deliveries_;
  }
  std::vector<v1::SettleResult> WaitForResults(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return results_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return results_;
  }
  size_t count() {
    absl::MutexLock lock(&mu_);
    return deliveries_.size();
  }
  std::optional<absl::Status> closed() {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SettleResult> results_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> closed_ ABSL_GUARDED_BY(mu_);
};

inline CloudEvent Event(const std::string& id, const std::string& type = "pettube.media.uploaded",
                        const std::string& partition_key = "") {
  CloudEvent e;
  e.set_id(id);
  e.set_source("//test");
  e.set_spec_version("1.0");
  e.set_type(type);
  e.set_text_data("payload " + id);
  if (!partition_key.empty())
    (*e.mutable_attributes())["partitionkey"].set_ce_string(partition_key);
  return e;
}

inline v1::Subscription Settings(absl::Duration ack_deadline = absl::Seconds(30),
                                 int max_attempts = 5) {
  v1::Subscription s;
  *s.mutable_ack_deadline() =
      TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(ack_deadline));
  s.set_max_delivery_attempts(max_attempts);
  *s.mutable_retry_policy()->mutable_min_backoff() = TimeUtil::MillisecondsToDuration(10);
  *s.mutable_retry_policy()->mutable_max_backoff() = TimeUtil::MillisecondsToDuration(20);
  return s;
}

inline v1::Settle Acks(const std::vector<std::string>& leases) {
  v1::Settle s;
  for (const auto& l : leases) s.add_acks(l);
  return s;
}

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/broker-", ++counter_);
    Open();
  }

  void Open(Broker::Options options = DefaultOptions()) {
    auto store = RocksDbBrokerStore::Open(dir_, absl::Hours(24));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    registry_ = std::make_unique<metrics::Registry>();
    auto broker = Broker::Open(store_.get(), options, registry_.get());
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
  }

  static Broker::Options DefaultOptions() {
    Broker::Options options;
    options.max_event_bytes = 4096;
    return options;
  }

  void Reopen(Broker::Options options = DefaultOptions()) {
    broker_.reset();
    store_.reset();
    Open(options);
  }

  uint64_t FirstSequence() {
    auto info = broker_->GetStreamInfo();
    EXPECT_TRUE(info.ok());
    return info->first_sequence();
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

  void Create(const std::string& id, v1::Subscription settings = Settings()) {
    auto s = broker_->CreateSubscription(id, settings);
    ASSERT_TRUE(s.ok()) << s.status();
  }

  ConsumerId Attach(const std::string& id, FakeConsumer* c, int credits = 100) {
    v1::Subscription settings;
    auto r = broker_->Attach("subscriptions/" + id, credits, "test", c, &settings);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }

  int64_t Backlog(const std::string& id) {
    auto s = broker_->GetSubscription("subscriptions/" + id);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? s->stats().backlog() : -1;
  }

  // Deliveries leased now; read under the broker's lock, so after any
  // dispatch pass in progress.
  int64_t InFlight(const std::string& id) {
    auto s = broker_->GetSubscription("subscriptions/" + id);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? s->stats().in_flight() : -1;
  }

  // Outlive the broker, like reactors that detach before they go.
  FakeConsumer& NewConsumer() {
    consumers_.push_back(std::make_unique<FakeConsumer>());
    return *consumers_.back();
  }

  static inline int counter_ = 0;
  std::string dir_;
  std::vector<std::unique_ptr<FakeConsumer>> consumers_;
  std::unique_ptr<RocksDbBrokerStore> store_;
  std::unique_ptr<metrics::Registry> registry_;
  std::unique_ptr<Broker> broker_;
};

}  // namespace pettube::broker
