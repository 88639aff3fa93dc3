// auth-token-exchange and the broker as real processes: the dev identity
// provider's ID token becomes a PetTube access token, JWKS are served over
// gRPC and HTTP, identities are private, and the broker refuses calls
// without valid credentials of the right scope.

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/credentials/token_source.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/publisher.h"
#include "libs/testing/child_process.h"
#include "libs/testing/dev_sign_in.h"
#include "libs/testing/http_get.h"
#include "libs/testing/service_process.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube {
namespace {

using ::pettube::testing::HttpGet;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::ServiceBinary;
using ::pettube::testing::ServiceProcess;

struct Running {
  std::unique_ptr<ServiceProcess> service;
  std::string grpc;
  std::string metrics;
};

Running Start(const std::string& binary, std::vector<std::string> args) {
  auto service = ::pettube::testing::StartService(binary, std::move(args), absl::Seconds(20));
  EXPECT_TRUE(service.ok()) << service.status();
  Running r;
  if (!service.ok()) return r;
  r.service = std::move(*service);
  r.grpc = r.service->grpc();
  r.metrics = r.service->metrics();
  return r;
}

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = NewTempDir("config");
    std::ofstream(dir + "/publisher.secret") << "publisher-secret-0123456789\n";
    std::ofstream(dir + "/clients.json")
        << R"([{"client_id": "publisher", "secret_file": ")" << dir << R"(/publisher.secret",
        "scopes": ["events.publish", "events.admin", "events.subscribe"]}])";
    auth_ = Start("auth-token-exchange",
                  {"--dev_idp", absl::StrCat("--workload_clients_file=", dir, "/clients.json")});
    auth_channel_ = grpc::CreateChannel(auth_.grpc, grpc::InsecureChannelCredentials());
    exchange_ = auth::v1::TokenExchange::NewStub(auth_channel_);
  }

  // The whole sign-in: dev IdP ID token -> ExchangeToken.
  auth::v1::ExchangeTokenResponse SignIn(const std::string& user) {
    auto signed_in = ::pettube::testing::DevSignIn(auth_channel_, user);
    EXPECT_TRUE(signed_in.ok()) << signed_in.status();
    return signed_in.ok() ? *std::move(signed_in) : auth::v1::ExchangeTokenResponse();
  }

  Running auth_;
  std::shared_ptr<grpc::Channel> auth_channel_;
  std::unique_ptr<auth::v1::TokenExchange::Stub> exchange_;
};

TEST_F(AuthTest, SignInGivesAnAccessTokenAndKeysArePublished) {
  const auto alice = SignIn("alice");
  EXPECT_FALSE(alice.access_token().empty());
  EXPECT_EQ(alice.scopes_size(), 3);

  grpc::ClientContext ctx;
  auth::v1::Jwks jwks;
  ASSERT_TRUE(exchange_->GetJwks(&ctx, auth::v1::GetJwksRequest(), &jwks).ok());
  ASSERT_GE(jwks.key_ids_size(), 1);
  auto http = HttpGet(auth_.metrics, "/.well-known/jwks.json");
  ASSERT_TRUE(http.ok());
  EXPECT_EQ(http->status, 200);
  EXPECT_EQ(http->body, jwks.json());
  EXPECT_NE(http->body.find(jwks.key_ids(0)), std::string::npos);

  // The same person signing in again is the same identity.
  EXPECT_EQ(SignIn("alice").identity().name(), alice.identity().name());
}

TEST_F(AuthTest, IdentitiesAreVisibleOnlyToThemselves) {
  const auto alice = SignIn("alice");
  const auto bob = SignIn("bob");
  auto lookup = [&](const std::string& token, const std::string& name) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    auth::v1::GetIdentityRequest req;
    req.set_name(name);
    auth::v1::Identity out;
    return exchange_->GetIdentity(&ctx, req, &out);
  };
  EXPECT_TRUE(lookup(alice.access_token(), alice.identity().name()).ok());
  EXPECT_EQ(lookup(alice.access_token(), bob.identity().name()).error_code(),
            grpc::PERMISSION_DENIED);
  EXPECT_EQ(lookup("", alice.identity().name()).error_code(), grpc::UNAUTHENTICATED);
}

TEST_F(AuthTest, BrokerRefusesCallsWithoutTheRightCredentials) {
  Running broker = Start("broker", {"--auth_server=" + auth_.grpc});
  auto stub = broker::v1::Broker::NewStub(
      grpc::CreateChannel(broker.grpc, grpc::InsecureChannelCredentials()));
  auto publish = [&](const std::string& token) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(10));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    broker::v1::PublishRequest req;
    auto* e = req.add_events();
    e->set_id("1");
    e->set_source("//auth-test");
    e->set_spec_version("1.0");
    e->set_type("pettube.test");
    broker::v1::PublishResponse resp;
    return stub->Publish(&ctx, req, &resp);
  };
  grpc::Status s = publish("");
  EXPECT_EQ(s.error_code(), grpc::UNAUTHENTICATED);
  EXPECT_NE(s.error_message().find("authorization"), std::string::npos) << s.error_message();
  s = publish("not.a.token");
  EXPECT_EQ(s.error_code(), grpc::UNAUTHENTICATED);
  // A person's token carries media.* scopes, not events.publish.
  s = publish(SignIn("alice").access_token());
  EXPECT_EQ(s.error_code(), grpc::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("events.publish"), std::string::npos);
  // A workload's token with the scope works.
  auth::WorkloadTokenSource workload(auth_channel_, "publisher", "publisher-secret-0123456789",
                                     {"events.publish", "events.subscribe"});
  auto token = workload.Token();
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(publish(*token).ok());
  // ...but not for what it was not granted in this token (listing every
  // subscription needs events.admin).
  grpc::ClientContext ctx;
  ASSERT_TRUE(workload.Attach(ctx).ok());
  broker::v1::ListSubscriptionsRequest list;
  broker::v1::ListSubscriptionsResponse subs;
  EXPECT_EQ(stub->ListSubscriptions(&ctx, list, &subs).error_code(), grpc::PERMISSION_DENIED);
  // Streams are refused before they start.
  grpc::ClientContext sctx;
  sctx.set_deadline(In(10));
  auto stream = stub->Subscribe(&sctx);
  broker::v1::SubscribeResponse r;
  while (stream->Read(&r)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::UNAUTHENTICATED);
}

TEST_F(AuthTest, ServicesPublishThroughTheClientLibraryWithWorkloadCredentials) {
  Running broker = Start("broker", {"--auth_server=" + auth_.grpc});
  auto token_source = std::make_shared<auth::WorkloadTokenSource>(
      auth_channel_, "publisher", "publisher-secret-0123456789",
      std::vector<std::string>{"events.publish"});
  broker_client::Publisher::Options options;
  options.configure_context = [token_source](grpc::ClientContext& ctx) {
    (void)token_source->Attach(ctx);  // without a token the broker answers UNAUTHENTICATED
  };
  broker_client::Publisher publisher(
      grpc::CreateChannel(broker.grpc, grpc::InsecureChannelCredentials()), options);
  broker::v1::StreamInfo payload;
  auto result = publisher.PublishAndWait(
      broker_client::NewEvent("pettube.media.uploaded", "//upload", "media/1", payload),
      absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->sequence, 1u);
}

TEST_F(AuthTest, AnotherInstanceTrustsAnIssuerThroughItsJwksUri) {
  // A second auth-token-exchange trusts the first one's dev identity
  // provider as an external OIDC issuer, fetching its keys over HTTP
  // (libcurl; plain http is allowed only on loopback).
  const std::string dir = NewTempDir("trust");
  std::ofstream(dir + "/issuers.json")
      << R"([{"issuer": "https://dev-idp.pettube.invalid", "client_id": "pettube-dev",
              "jwks_uri": "http://)"
      << auth_.metrics << R"(/dev-idp/jwks.json"}])";
  Running other =
      Start("auth-token-exchange", {absl::StrCat("--trusted_issuers_file=", dir, "/issuers.json")});
  auto idp = auth::v1::DevIdentityProvider::NewStub(auth_channel_);
  grpc::ClientContext mint_ctx;
  auth::v1::MintIdTokenRequest mint;
  mint.set_user("dana");
  auth::v1::MintIdTokenResponse id_token;
  ASSERT_TRUE(idp->MintIdToken(&mint_ctx, mint, &id_token).ok());

  auto exchange = auth::v1::TokenExchange::NewStub(
      grpc::CreateChannel(other.grpc, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(10));
  auth::v1::ExchangeTokenRequest req;
  req.set_subject_token(id_token.id_token());
  req.set_subject_token_type("urn:ietf:params:oauth:token-type:id_token");
  auth::v1::ExchangeTokenResponse resp;
  const grpc::Status s = exchange->ExchangeToken(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.identity().subject(), "dana");
  // The second instance has no dev identity provider of its own.
  grpc::ClientContext none_ctx;
  EXPECT_EQ(auth::v1::DevIdentityProvider::NewStub(
                grpc::CreateChannel(other.grpc, grpc::InsecureChannelCredentials()))
                ->MintIdToken(&none_ctx, mint, &id_token)
                .error_code(),
            grpc::UNIMPLEMENTED);
}

TEST_F(AuthTest, WrongWorkloadSecretIsUnauthenticated) {
  auth::WorkloadTokenSource wrong(auth_channel_, "publisher", "guess", {});
  EXPECT_EQ(wrong.Token().status().code(), absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace pettube
