// The broker with real credentials: auth-token-exchange and the broker as
// processes, workloads with their own client credentials. A subscription
// serves the workload that created it (and those the policy grants it to,
// found by their client id through auth-token-exchange), and the publish
// policy file binds each workload to its event types and sources.

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/credentials/token_source.h"
#include "libs/testing/child_process.h"
#include "libs/testing/service_process.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube {
namespace {

using ::pettube::testing::ChildProcess;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::RunfilePath;
using ::pettube::testing::ServiceBinary;
using ::pettube::testing::ServiceProcess;
namespace v1 = ::pettube::broker::v1;

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

struct Running {
  std::unique_ptr<ServiceProcess> service;
  std::string grpc;
};

Running Start(const std::string& binary, std::vector<std::string> args) {
  auto service = ::pettube::testing::StartService(binary, std::move(args), absl::Seconds(20));
  EXPECT_TRUE(service.ok()) << service.status();
  Running r;
  if (!service.ok()) return r;
  r.service = std::move(*service);
  r.grpc = r.service->grpc();
  return r;
}

class BrokerAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = NewTempDir("config");
    std::string clients = "[";
    for (const char* id :
         {"media-catalog", "upload", "transcode-coordinator", "transcode-worker"}) {
      std::ofstream(Secret(id)) << id << "-secret-0123456789\n";
      absl::StrAppend(&clients, clients.size() > 1 ? "," : "", R"({"client_id": ")", id,
                      R"(", "secret_file": ")", Secret(id),
                      R"(", "scopes": ["events.publish", "events.subscribe"]})");
    }
    clients += "]";
    std::ofstream(config_ + "/clients.json") << clients;
    auth_ = Start("auth-token-exchange", {"--workload_clients_file=" + config_ + "/clients.json"});
    auth_channel_ = grpc::CreateChannel(auth_.grpc, grpc::InsecureChannelCredentials());
  }

  std::string Secret(const std::string& id) const { return config_ + "/" + id + ".secret"; }

  void StartBroker(std::vector<std::string> flags = {}) {
    flags.push_back("--auth_server=" + auth_.grpc);
    broker_ = Start("broker", flags);
    stub_ =
        v1::Broker::NewStub(grpc::CreateChannel(broker_.grpc, grpc::InsecureChannelCredentials()));
  }

  // A context carrying workload `id`'s token.
  std::unique_ptr<grpc::ClientContext> As(const std::string& id) {
    auth::WorkloadTokenSource tokens(auth_channel_, id, absl::StrCat(id, "-secret-0123456789"),
                                     {"events.publish", "events.subscribe"});
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(In(10));
    EXPECT_TRUE(tokens.Attach(*ctx).ok()) << id;
    return ctx;
  }

  grpc::Status Create(const std::string& as, const std::string& id) {
    auto ctx = As(as);
    v1::CreateSubscriptionRequest req;
    req.set_subscription_id(id);
    v1::Subscription sub;
    return stub_->CreateSubscription(ctx.get(), req, &sub);
  }

  // OK once attached, else how the stream ended.
  grpc::Status Attach(const std::string& as, const std::string& id) {
    auto ctx = As(as);
    auto stream = stub_->Subscribe(ctx.get());
    v1::SubscribeRequest attach;
    attach.mutable_attach()->set_subscription("subscriptions/" + id);
    attach.mutable_attach()->set_max_in_flight(1);
    stream->Write(attach);
    v1::SubscribeResponse r;
    if (stream->Read(&r) && r.has_attached()) {
      ctx->TryCancel();
      stream->Finish();
      return grpc::Status::OK;
    }
    return stream->Finish();
  }

  std::string config_;
  Running auth_;
  std::shared_ptr<grpc::Channel> auth_channel_;
  Running broker_;
  std::unique_ptr<v1::Broker::Stub> stub_;
};

TEST_F(BrokerAuthTest, SubscriptionsServeTheirCreatorAndTheWorkersTheirQueue) {
  StartBroker();
  ASSERT_TRUE(Create("media-catalog", "media-catalog").ok());
  EXPECT_TRUE(Attach("media-catalog", "media-catalog").ok());
  const grpc::Status denied = Attach("upload", "media-catalog");
  EXPECT_EQ(denied.error_code(), grpc::PERMISSION_DENIED) << denied.error_message();
  // The coordinator's job queue: the workers are granted it by client id,
  // which the broker learns from auth-token-exchange.
  ASSERT_TRUE(Create("transcode-coordinator", "transcode-jobs").ok());
  const grpc::Status worker = Attach("transcode-worker", "transcode-jobs");
  EXPECT_TRUE(worker.ok()) << worker.error_code() << " " << worker.error_message();
  EXPECT_EQ(Attach("upload", "transcode-jobs").error_code(), grpc::PERMISSION_DENIED);
  // Creating it again is ALREADY_EXISTS, whoever asks.
  EXPECT_EQ(Create("transcode-worker", "transcode-jobs").error_code(), grpc::ALREADY_EXISTS);
}

TEST_F(BrokerAuthTest, ThePublishPolicyFileBindsEachWorkloadToItsEvents) {
  const std::string policy = config_ + "/policy.json";
  std::ofstream(policy) << R"({"workloads": [
      {"client_id": "upload", "types": ["pettube.media.uploaded"],
       "source_prefixes": ["//pettube/upload"]}]})";
  StartBroker({"--publish_policy_file=" + policy});
  auto publish = [&](const std::string& as, const std::string& type, const std::string& source) {
    auto ctx = As(as);
    v1::PublishRequest req;
    auto* e = req.add_events();
    e->set_id(absl::StrCat(as, type, source));
    e->set_source(source);
    e->set_spec_version("1.0");
    e->set_type(type);
    v1::PublishResponse resp;
    const grpc::Status s = stub_->Publish(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.results_size() == 1 ? resp.results(0).status() : v1::Status();
  };
  EXPECT_EQ(publish("upload", "pettube.media.uploaded", "//pettube/upload").code(), 0);
  const v1::Status forged = publish("upload", "pettube.media.ready", "//pettube/upload");
  EXPECT_EQ(forged.code(), grpc::PERMISSION_DENIED);
  EXPECT_NE(forged.message().find("event.type"), std::string::npos) << forged.message();
  EXPECT_EQ(publish("upload", "pettube.media.uploaded", "//pettube/media-catalog").code(),
            grpc::PERMISSION_DENIED);
  // A workload the file does not name publishes nothing.
  EXPECT_EQ(publish("media-catalog", "pettube.media.deleted", "//pettube/media-catalog").code(),
            grpc::PERMISSION_DENIED);
}

TEST(BrokerPolicyFileTest, AMalformedPolicyFileStopsTheBrokerWithOneLine) {
  const std::string dir = NewTempDir("bad-policy");
  std::ofstream(dir + "/policy.json") << R"({"workloads": [{"types": ["a"]}]})";
  auto p = ChildProcess::Start(
      RunfilePath("services/broker/broker"),
      {"--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0", "--data_dir=" + dir + "/data",
       "--publish_policy_file=" + dir + "/policy.json"},
      dir + "/stderr.log");
  ASSERT_TRUE(p.ok());
  auto code = (*p)->WaitForExit(absl::Seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_NE(*code, 0);
  EXPECT_NE((*p)->Stderr().find("workloads[0]: needs exactly one of client_id, identity"),
            std::string::npos)
      << (*p)->Stderr();
}

}  // namespace
}  // namespace pettube
