// The BrokerService with credentials checked, in process on 127.0.0.1:0:
// subscriptions belong to their creator, the publish policy binds
// workloads to types and sources, and long streams end with
// UNAUTHENTICATED when the caller's token expires.

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/credentials/authenticator.h"
#include "libs/auth/jwk.h"
#include "libs/auth/jwt.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "services/broker/broker_service.h"
#include "services/broker/broker_test_util.h"

namespace pettube::broker {
namespace {

// Client ids of the test's workloads, as auth-token-exchange would answer.
class FakeResolver : public ClientIdResolver {
 public:
  void Resolve(const std::string& identity, const std::string&, Done done) override {
    auto it = ids.find(identity);
    if (it == ids.end()) return done(absl::NotFoundError("unknown identity"));
    done(it->second);
  }
  std::map<std::string, std::string> ids = {
      {"id-upload", "upload"}, {"id-catalog", "media-catalog"}, {"id-worker", "transcode-worker"}};
};

class ServiceAuthTest : public BrokerTest {
 protected:
  void SetUp() override {
    BrokerTest::SetUp();
    key_ = std::make_unique<auth::SigningKey>(*auth::SigningKey::Generate("k1"));
    auth::JwkSet set;
    ASSERT_TRUE(set.Add(*key_->ToPublicKey()).ok());
    jwks_ = auth::ToJwksJson(set);
  }
  void TearDown() override {
    if (server_ != nullptr) {
      broker_->Drain();
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    }
    broker_.reset();
  }

  void Serve(const std::string& policy_json = "") {
    if (!policy_json.empty()) {
      auto parsed = AccessPolicy::Parse(policy_json);
      ASSERT_TRUE(parsed.ok()) << parsed.status();
      policy_ = std::make_unique<AccessPolicy>(*parsed);
    } else {
      policy_ = std::make_unique<AccessPolicy>(AccessPolicy::Defaults());
    }
    Broker::Options options = DefaultOptions();
    options.access_policy = policy_.get();
    Reopen(options);
    authenticator_ = std::make_unique<auth::Authenticator>(
        auth::Authenticator::Options{}, [this]() -> absl::StatusOr<std::string> { return jwks_; });
    service_ = std::make_unique<BrokerService>(*broker_, authenticator_.get(), &resolver_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Broker::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  std::string Token(const std::string& identity, const std::string& scope,
                    absl::Duration ttl = absl::Minutes(15)) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    nlohmann::json claims = {{"iss", "pettube-auth"},
                             {"aud", "pettube"},
                             {"sub", identity},
                             {"iat", now},
                             {"nbf", now},
                             {"exp", now + absl::ToInt64Seconds(ttl)},
                             {"jti", "t"},
                             {"scope", scope},
                             {"workload", true}};
    return *auth::SignCompact(claims, *key_);
  }

  void As(grpc::ClientContext& ctx, const std::string& token, int deadline_s = 10) {
    ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(deadline_s));
  }

  grpc::Status CreateAs(const std::string& token, const std::string& id) {
    grpc::ClientContext ctx;
    As(ctx, token);
    v1::CreateSubscriptionRequest req;
    req.set_subscription_id(id);
    v1::Subscription sub;
    return stub_->CreateSubscription(&ctx, req, &sub);
  }

  // Attaches and returns how the stream ended (or OK if it attached).
  grpc::Status AttachAs(const std::string& token, const std::string& id) {
    grpc::ClientContext ctx;
    As(ctx, token);
    auto stream = stub_->Subscribe(&ctx);
    v1::SubscribeRequest attach;
    attach.mutable_attach()->set_subscription("subscriptions/" + id);
    attach.mutable_attach()->set_max_in_flight(1);
    stream->Write(attach);
    v1::SubscribeResponse r;
    if (stream->Read(&r) && r.has_attached()) {
      ctx.TryCancel();
      stream->Finish();
      return grpc::Status::OK;
    }
    return stream->Finish();
  }

  std::unique_ptr<auth::SigningKey> key_;
  std::string jwks_;
  FakeResolver resolver_;
  std::unique_ptr<AccessPolicy> policy_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<BrokerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Broker::Stub> stub_;
};

TEST_F(ServiceAuthTest, ASubscriptionServesOnlyItsCreatorItsGranteesAndAdmins) {
  Serve();
  const std::string catalog = Token("id-catalog", "events.subscribe");
  const std::string upload = Token("id-upload", "events.subscribe events.publish");
  const std::string admin = Token("id-ops", "events.admin");
  // events.subscribe suffices to create one's own subscription.
  ASSERT_TRUE(CreateAs(catalog, "media-catalog").ok());
  EXPECT_TRUE(AttachAs(catalog, "media-catalog").ok());
  const grpc::Status denied = AttachAs(upload, "media-catalog");
  EXPECT_EQ(denied.error_code(), grpc::PERMISSION_DENIED) << denied.error_message();
  EXPECT_TRUE(AttachAs(admin, "media-catalog").ok());
  {
    grpc::ClientContext ctx;
    As(ctx, upload);
    v1::DeleteSubscriptionRequest req;
    req.set_name("subscriptions/media-catalog");
    google::protobuf::Empty empty;
    EXPECT_EQ(stub_->DeleteSubscription(&ctx, req, &empty).error_code(), grpc::PERMISSION_DENIED);
  }
  {
    // Stats are open to any subscriber (autoscalers).
    grpc::ClientContext ctx;
    As(ctx, upload);
    v1::GetSubscriptionRequest req;
    req.set_name("subscriptions/media-catalog");
    v1::Subscription sub;
    EXPECT_TRUE(stub_->GetSubscription(&ctx, req, &sub).ok());
  }
  // The default policy shares the coordinator's work queue with workers.
  ASSERT_TRUE(CreateAs(Token("id-coord", "events.subscribe"), "transcode-jobs").ok());
  EXPECT_TRUE(AttachAs(Token("id-worker", "events.subscribe"), "transcode-jobs").ok());
  EXPECT_EQ(AttachAs(upload, "transcode-jobs").error_code(), grpc::PERMISSION_DENIED);
}

TEST_F(ServiceAuthTest, ThePublishPolicyRefusesEventsOutsideAWorkloadsBinding) {
  Serve(R"({"workloads": [{"client_id": "upload", "types": ["pettube.media.uploaded"],
                           "source_prefixes": ["//pettube/upload"]}]})");
  grpc::ClientContext ctx;
  As(ctx, Token("id-upload", "events.publish"));
  v1::PublishRequest req;
  CloudEvent ok = Event("a", "pettube.media.uploaded");
  ok.set_source("//pettube/upload");
  *req.add_events() = ok;
  CloudEvent forged = Event("b", "pettube.media.ready");
  forged.set_source("//pettube/upload");
  *req.add_events() = forged;
  v1::PublishResponse resp;
  ASSERT_TRUE(stub_->Publish(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).status().code(), 0);
  EXPECT_EQ(resp.results(1).status().code(), grpc::PERMISSION_DENIED);
  EXPECT_NE(resp.results(1).status().message().find("event.type"), std::string::npos);
  // A workload not in the file publishes nothing.
  grpc::ClientContext ctx2;
  As(ctx2, Token("id-catalog", "events.publish"));
  v1::PublishResponse resp2;
  ASSERT_TRUE(stub_->Publish(&ctx2, req, &resp2).ok());
  EXPECT_EQ(resp2.results(0).status().code(), grpc::PERMISSION_DENIED);
}

TEST_F(ServiceAuthTest, LongStreamsEndUnauthenticatedWhenTheTokenExpires) {
  Serve();
  const std::string lasting = Token("id-catalog", "events.subscribe events.publish");
  ASSERT_TRUE(CreateAs(lasting, "q").ok());
  // Tokens that expire in 2 s (exp has one-second granularity).
  const std::string brief =
      Token("id-catalog", "events.subscribe events.publish", absl::Seconds(2));
  const absl::Time start = absl::Now();

  grpc::ClientContext sub_ctx;
  As(sub_ctx, brief, 20);
  auto sub = stub_->Subscribe(&sub_ctx);
  v1::SubscribeRequest attach;
  attach.mutable_attach()->set_subscription("subscriptions/q");
  attach.mutable_attach()->set_max_in_flight(10);
  ASSERT_TRUE(sub->Write(attach));

  grpc::ClientContext watch_ctx;
  As(watch_ctx, brief, 20);
  v1::WatchSubscriptionStatsRequest watch_req;
  watch_req.set_name("subscriptions/q");
  auto watch = stub_->WatchSubscriptionStats(&watch_ctx, watch_req);

  grpc::ClientContext pub_ctx;
  As(pub_ctx, brief, 20);
  auto pub = stub_->PublishStream(&pub_ctx);
  v1::PublishStreamRequest preq;
  auto* pe = preq.add_events();
  pe->set_client_sequence(1);
  *pe->mutable_event() = Event("before-expiry");
  ASSERT_TRUE(pub->Write(preq));
  v1::PublishStreamResponse presp;
  ASSERT_TRUE(pub->Read(&presp));  // acked while the token is valid
  EXPECT_EQ(presp.acks(0).result().status().code(), 0);

  v1::SubscribeResponse r;
  while (sub->Read(&r)) {
  }
  EXPECT_EQ(sub->Finish().error_code(), grpc::UNAUTHENTICATED);
  v1::SubscriptionStats stats;
  while (watch->Read(&stats)) {
  }
  EXPECT_EQ(watch->Finish().error_code(), grpc::UNAUTHENTICATED);
  while (pub->Read(&presp)) {
  }
  EXPECT_EQ(pub->Finish().error_code(), grpc::UNAUTHENTICATED);
  // Ended by the expiry, not by the 20 s deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace pettube::broker
