// The fake broker refuses exactly what the real broker's validation refuses:
// each case goes through the fake over gRPC and through
// services/broker/event_validation directly, and the answers must match.
#include "libs/broker_client/fake_broker.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "services/broker/event_validation.h"

namespace pettube::broker_client {
namespace {

using ::io::cloudevents::v1::CloudEvent;

CloudEvent Valid(const std::string& id) {
  CloudEvent e;
  e.set_id(id);
  e.set_source("/tests/fake");
  e.set_spec_version("1.0");
  e.set_type("pettube.test.v1");
  return e;
}

// Events covering every rule of ValidateEvent, each broken in one way, plus
// valid ones next to the limits.
std::vector<CloudEvent> Cases() {
  std::vector<CloudEvent> cases;
  cases.push_back(Valid("ok"));
  CloudEvent e = Valid("");
  cases.push_back(e);
  e = Valid("no-source");
  e.clear_source();
  cases.push_back(e);
  e = Valid("old-spec");
  e.set_spec_version("0.3");
  cases.push_back(e);
  e = Valid("no-spec");
  e.clear_spec_version();
  cases.push_back(e);
  e = Valid("no-type");
  e.clear_type();
  cases.push_back(e);
  e = Valid("upper-attr");
  (*e.mutable_attributes())["Subject"].set_ce_string("x");
  cases.push_back(e);
  e = Valid("long-attr");
  (*e.mutable_attributes())[std::string(21, 'a')].set_ce_string("x");
  cases.push_back(e);
  e = Valid("max-attr");
  (*e.mutable_attributes())[std::string(20, 'a')].set_ce_string("x");
  cases.push_back(e);
  e = Valid("reserved-attr");
  (*e.mutable_attributes())["source"].set_ce_string("x");
  cases.push_back(e);
  e = Valid("unset-attr");
  (*e.mutable_attributes())["subject"];
  cases.push_back(e);
  e = Valid("good-attrs");
  (*e.mutable_attributes())["subject"].set_ce_string("media/1");
  (*e.mutable_attributes())["n1"].set_ce_integer(3);
  cases.push_back(e);
  // Just inside and just over the size limit.
  e = Valid("at-limit");
  e.set_text_data("");
  const size_t overhead = e.ByteSizeLong() + 4;  // tag + length of a ~1 MiB field
  e.set_text_data(std::string(FakeBroker::kMaxEventBytes - overhead, 'x'));
  EXPECT_LE(e.ByteSizeLong(), FakeBroker::kMaxEventBytes);
  cases.push_back(e);
  e = Valid("over-limit");
  e.set_binary_data(std::string(FakeBroker::kMaxEventBytes, 'x'));
  cases.push_back(e);
  return cases;
}

class FakeBrokerValidationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = FakeBrokerServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = broker::v1::Broker::NewStub(server_->NewChannel());
  }

  std::unique_ptr<FakeBrokerServer> server_;
  std::unique_ptr<broker::v1::Broker::Stub> stub_;
};

TEST_F(FakeBrokerValidationTest, RefusesExactlyTheEventsTheRealValidationRefuses) {
  int refused = 0;
  for (const CloudEvent& event : Cases()) {
    broker::v1::PublishRequest request;
    *request.add_events() = event;
    broker::v1::PublishResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status rpc = stub_->Publish(&context, request, &response);
    ASSERT_TRUE(rpc.ok()) << rpc.error_message();
    ASSERT_EQ(response.results_size(), 1);
    const absl::Status real = broker::ValidateEvent(event, FakeBroker::kMaxEventBytes);
    const auto& result = response.results(0);
    EXPECT_EQ(result.status().code(), static_cast<int32_t>(real.code())) << event.id();
    EXPECT_EQ(result.status().message(), std::string(real.message())) << event.id();
    if (!real.ok()) ++refused;
  }
  // The cases are not all trivially accepted (or refused).
  EXPECT_EQ(refused, 10);
  EXPECT_EQ(server_->broker().GetStats().refused, refused);
  EXPECT_EQ(server_->broker().GetStats().stored, 4);
}

TEST_F(FakeBrokerValidationTest, RefusesTheSubscriptionNamesTheRealValidationRefuses) {
  const std::vector<std::string> names = {
      "subscriptions/s", "subscriptions/Upper",         "s",
      "subscriptions/",  "subscriptions/9starts-digit", "subscriptions/" + std::string(64, 'a')};
  for (const std::string& name : names) server_->broker().AddSubscription(name);
  for (const std::string& name : names) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub_->Subscribe(&context);
    broker::v1::SubscribeRequest attach;
    attach.mutable_attach()->set_subscription(name);
    attach.mutable_attach()->set_max_in_flight(1);
    ASSERT_TRUE(stream->Write(attach));
    broker::v1::SubscribeResponse response;
    const bool attached = stream->Read(&response) && response.has_attached();
    const absl::Status real = broker::ValidateName(name, "attach.subscription");
    EXPECT_EQ(attached, real.ok()) << name;
    if (!real.ok()) {
      const grpc::Status finished = stream->Finish();
      EXPECT_EQ(static_cast<int>(finished.error_code()), static_cast<int>(real.code())) << name;
      EXPECT_EQ(finished.error_message(), std::string(real.message())) << name;
    } else {
      context.TryCancel();
      stream->Finish();
    }
  }
}

TEST_F(FakeBrokerValidationTest, LeaseIdsAreShapedLikeTheRealBrokers) {
  server_->broker().AddSubscription("subscriptions/s");
  server_->broker().Append(Valid("e1"));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub_->Subscribe(&context);
  broker::v1::SubscribeRequest attach;
  attach.mutable_attach()->set_subscription("subscriptions/s");
  attach.mutable_attach()->set_max_in_flight(1);
  ASSERT_TRUE(stream->Write(attach));
  broker::v1::SubscribeResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_attached());
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_EQ(response.deliveries().deliveries_size(), 1);
  const auto& delivery = response.deliveries().deliveries(0);
  const auto parts = broker::ParseLeaseId(delivery.lease_id());
  ASSERT_TRUE(parts.has_value()) << delivery.lease_id();
  EXPECT_EQ(parts->sequence, delivery.sequence());
  EXPECT_EQ(parts->attempt, static_cast<uint64_t>(delivery.attempt()));
  context.TryCancel();
  stream->Finish();
}

}  // namespace
}  // namespace pettube::broker_client
