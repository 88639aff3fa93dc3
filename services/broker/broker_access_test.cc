// Per-subscription ownership and the publish policy in the broker core.

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "services/broker/broker_test_util.h"

namespace pettube::broker {
namespace {

Access Who(const std::string& identity, const std::string& client_id = "", bool admin = false) {
  Access a;
  a.identity = identity;
  a.client_id = client_id;
  a.admin = admin;
  a.checked = true;
  return a;
}

class AccessTest : public BrokerTest {
 protected:
  void OpenWith(const AccessPolicy& policy) {
    policy_ = std::make_unique<AccessPolicy>(policy);
    Broker::Options options = DefaultOptions();
    options.access_policy = policy_.get();
    Reopen(options);
  }
  void TearDown() override { broker_.reset(); }  // before policy_ goes
  std::unique_ptr<AccessPolicy> policy_;
};

TEST_F(AccessTest, OnlyTheOwnerOrAnAdminUsesASubscriptionAlsoAfterRestart) {
  OpenWith(AccessPolicy::Defaults());
  const Access owner = Who("id-catalog", "media-catalog");
  const Access other = Who("id-upload", "upload");
  const Access admin = Who("id-ops", "pettube-admin", /*admin=*/true);
  ASSERT_TRUE(broker_->CreateSubscription("catalog", Settings(), owner).ok());
  for (int round = 0; round < 2; ++round) {
    FakeConsumer& c = NewConsumer();
    v1::Subscription settings;
    auto denied = broker_->Attach("subscriptions/catalog", 1, "x", &c, &settings, other);
    EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied) << denied.status();
    EXPECT_NE(denied.status().message().find("belongs to another workload"), std::string::npos);
    v1::StartPosition earliest;
    earliest.mutable_earliest();
    EXPECT_EQ(broker_->Seek("subscriptions/catalog", earliest, other).status().code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(broker_->ListDeadLetters("subscriptions/catalog", 0, "", other).status().code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(broker_->Redrive("subscriptions/catalog", 0, 100, other).status().code(),
              absl::StatusCode::kPermissionDenied);
    v1::Subscription update;
    update.set_name("subscriptions/catalog");
    EXPECT_EQ(broker_->UpdateSubscription(update, {"labels"}, other).status().code(),
              absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(broker_->DeleteSubscription("subscriptions/catalog", other).code(),
              absl::StatusCode::kPermissionDenied);
    // Stats stay open: autoscalers watch queues they do not own.
    EXPECT_TRUE(broker_->GetSubscription("subscriptions/catalog").ok());
    for (const Access& ok : {owner, admin}) {
      auto id = broker_->Attach("subscriptions/catalog", 1, "x", &c, &settings, ok);
      ASSERT_TRUE(id.ok()) << id.status();
      broker_->Detach(*id);
      EXPECT_TRUE(broker_->ListDeadLetters("subscriptions/catalog", 0, "", ok).ok());
    }
    // The owner is durable.
    Broker::Options options = DefaultOptions();
    options.access_policy = policy_.get();
    Reopen(options);
  }
  EXPECT_TRUE(broker_->DeleteSubscription("subscriptions/catalog", owner).ok());
}

TEST_F(AccessTest, ThePolicyGrantsAWorkQueueToItsWorkers) {
  OpenWith(AccessPolicy::Defaults());
  ASSERT_TRUE(broker_
                  ->CreateSubscription("transcode-jobs", Settings(),
                                       Who("id-coord", "transcode-coordinator"))
                  .ok());
  FakeConsumer& c = NewConsumer();
  v1::Subscription settings;
  auto worker = broker_->Attach("subscriptions/transcode-jobs", 1, "w", &c, &settings,
                                Who("id-worker", "transcode-worker"));
  ASSERT_TRUE(worker.ok()) << worker.status();
  broker_->Detach(*worker);
  EXPECT_EQ(broker_
                ->Attach("subscriptions/transcode-jobs", 1, "w", &c, &settings,
                         Who("id-upload", "upload"))
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(AccessTest, PublishPolicyRefusesEachEventOutsideTheWorkloadsBinding) {
  auto policy = AccessPolicy::Parse(R"({"workloads": [
      {"client_id": "upload", "types": ["pettube.media.uploaded"],
       "source_prefixes": ["//pettube/upload"]}]})");
  ASSERT_TRUE(policy.ok()) << policy.status();
  OpenWith(*policy);
  Create("all");
  CloudEvent good = Event("u1", "pettube.media.uploaded");
  good.set_source("//pettube/upload");
  CloudEvent bad_type = Event("u2", "pettube.media.ready");
  bad_type.set_source("//pettube/upload");
  CloudEvent bad_source = Event("u3", "pettube.media.uploaded");  // source "//test"
  absl::Notification done;
  std::vector<v1::PublishResult> results;
  broker_->Publish(
      {good, bad_type, bad_source},
      [&](std::vector<v1::PublishResult> r) {
        results = std::move(r);
        done.Notify();
      },
      Who("id-upload", "upload"));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].status().code(), 0);
  EXPECT_EQ(results[1].status().code(), static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_NE(results[1].status().message().find("event.type"), std::string::npos);
  EXPECT_EQ(results[2].status().code(), static_cast<int>(absl::StatusCode::kPermissionDenied));
  EXPECT_NE(results[2].status().message().find("event.source"), std::string::npos);
  EXPECT_EQ(Backlog("all"), 1);
}

}  // namespace
}  // namespace pettube::broker
