// The real broker binary over gRPC: publish, subscribe, settle, per-item
// errors on streams, redelivery when a stream drops, and no acknowledged
// event lost when the broker is killed with SIGKILL mid-load.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/service_process.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube {
namespace {

using broker::v1::Broker;
using io::cloudevents::v1::CloudEvent;
using ::pettube::testing::ChildProcess;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::ServiceBinary;
using ::pettube::testing::ServiceProcess;
namespace v1 = ::pettube::broker::v1;

CloudEvent Event(const std::string& id, const std::string& type = "pettube.test") {
  CloudEvent e;
  e.set_id(id);
  e.set_source("//broker-test");
  e.set_spec_version("1.0");
  e.set_type(type);
  e.set_text_data(std::string(512, 'x'));
  return e;
}

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

class BrokerProcess {
 public:
  explicit BrokerProcess(const std::string& data_dir, std::vector<std::string> flags = {}) {
    ServiceProcess::Options options;
    options.binary = ServiceBinary("broker");
    options.data_dir = data_dir;
    options.args = std::move(flags);
    options.ready_timeout = absl::Seconds(20);
    auto service = ServiceProcess::Start(std::move(options));
    EXPECT_TRUE(service.ok()) << service.status();
    if (service.ok()) service_ = std::move(*service);
    channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
    stub_ = Broker::NewStub(channel_);
  }
  Broker::Stub& stub() { return *stub_; }
  std::string address() const { return service_ ? service_->grpc() : ""; }
  ChildProcess& process() { return service_->process(); }
  std::string metrics() const { return service_ ? service_->metrics() : ""; }

 private:
  std::unique_ptr<ServiceProcess> service_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Broker::Stub> stub_;
};

void CreateSubscription(Broker::Stub& stub, const std::string& id, int ack_deadline_s = 30) {
  grpc::ClientContext ctx;
  ctx.set_deadline(In(10));
  v1::CreateSubscriptionRequest req;
  req.set_subscription_id(id);
  req.mutable_subscription()->mutable_ack_deadline()->set_seconds(ack_deadline_s);
  v1::Subscription resp;
  const grpc::Status s = stub.CreateSubscription(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.name(), "subscriptions/" + id);
}

using SubscribeStream = grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>;

std::unique_ptr<SubscribeStream> Attach(Broker::Stub& stub, grpc::ClientContext* ctx,
                                        const std::string& id, int credits, bool confirm) {
  auto stream = stub.Subscribe(ctx);
  v1::SubscribeRequest attach;
  attach.mutable_attach()->set_subscription("subscriptions/" + id);
  attach.mutable_attach()->set_max_in_flight(credits);
  attach.mutable_attach()->set_confirm_settlements(confirm);
  EXPECT_TRUE(stream->Write(attach));
  return stream;
}

// Reads until a message of the wanted kind arrives.
v1::SubscribeResponse ReadUntil(SubscribeStream& stream, v1::SubscribeResponse::ResponseCase kind) {
  v1::SubscribeResponse r;
  while (stream.Read(&r)) {
    if (r.response_case() == kind) return r;
  }
  ADD_FAILURE() << "stream ended before a message of kind " << kind;
  return r;
}

TEST(BrokerBinaryTest, PublishSubscribeAckOverGrpc) {
  BrokerProcess broker(NewTempDir("data"));
  CreateSubscription(broker.stub(), "media");
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(10));
    v1::PublishRequest req;
    *req.add_events() = Event("e1");
    v1::PublishResponse resp;
    ASSERT_TRUE(broker.stub().Publish(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.results_size(), 1);
    EXPECT_EQ(resp.results(0).status().code(), 0);
    EXPECT_EQ(resp.results(0).sequence(), 1u);
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(In(20));
  auto stream = Attach(broker.stub(), &ctx, "media", 10, /*confirm=*/true);
  ReadUntil(*stream, v1::SubscribeResponse::kAttached);
  auto deliveries = ReadUntil(*stream, v1::SubscribeResponse::kDeliveries);
  ASSERT_EQ(deliveries.deliveries().deliveries_size(), 1);
  const v1::Delivery& d = deliveries.deliveries().deliveries(0);
  EXPECT_EQ(d.event().id(), "e1");
  EXPECT_EQ(d.attempt(), 1);
  v1::SubscribeRequest settle;
  settle.mutable_settle()->add_acks(d.lease_id());
  ASSERT_TRUE(stream->Write(settle));
  auto results = ReadUntil(*stream, v1::SubscribeResponse::kSettleResults);
  ASSERT_EQ(results.settle_results().results_size(), 1);
  EXPECT_EQ(results.settle_results().results(0).status().code(), 0);
  stream->WritesDone();
  v1::SubscribeResponse rest;
  while (stream->Read(&rest)) {
  }
  EXPECT_TRUE(stream->Finish().ok());

  grpc::ClientContext get_ctx;
  v1::GetSubscriptionRequest get;
  get.set_name("subscriptions/media");
  v1::Subscription sub;
  ASSERT_TRUE(broker.stub().GetSubscription(&get_ctx, get, &sub).ok());
  EXPECT_EQ(sub.stats().backlog(), 0);
  EXPECT_EQ(sub.stats().acked(), 1);

  // The same stats on /metrics, valid for Prometheus.
  auto scrape = ::pettube::testing::HttpGet(broker.metrics(), "/metrics");
  ASSERT_TRUE(scrape.ok());
  for (const char* line :
       {"pettube_broker_subscription_backlog{subscription=\"subscriptions/media\"} 0",
        "pettube_broker_subscription_acked_total{subscription=\"subscriptions/media\"} 1",
        "pettube_broker_subscription_delivered_total{subscription=\"subscriptions/media\"} 1",
        "pettube_broker_events_published_total 1"}) {
    EXPECT_NE(scrape->body.find(line), std::string::npos) << line << "\n" << scrape->body;
  }
  const std::string file = NewTempDir("scrape") + "/metrics.txt";
  std::ofstream(file) << scrape->body;
  EXPECT_EQ(std::system(absl::StrCat("/usr/bin/promtool check metrics < ", file).c_str()), 0);
}

TEST(BrokerBinaryTest, BadItemsOnStreamsGetTheirOwnStatusAndTheStreamLivesOn) {
  BrokerProcess broker(NewTempDir("data"));
  CreateSubscription(broker.stub(), "q");
  grpc::ClientContext pctx;
  pctx.set_deadline(In(20));
  auto publish = broker.stub().PublishStream(&pctx);
  v1::PublishStreamRequest req;
  for (int i = 0; i < 3; ++i) {
    auto* e = req.add_events();
    e->set_client_sequence(100 + i);
    *e->mutable_event() = Event(absl::StrCat("p", i));
  }
  req.mutable_events(1)->mutable_event()->clear_source();
  ASSERT_TRUE(publish->Write(req));
  std::map<uint64_t, v1::PublishResult> acks;
  v1::PublishStreamResponse resp;
  while (acks.size() < 3 && publish->Read(&resp)) {
    for (const auto& a : resp.acks()) acks[a.client_sequence()] = a.result();
  }
  ASSERT_EQ(acks.size(), 3u);
  EXPECT_EQ(acks[100].status().code(), 0);
  EXPECT_EQ(acks[101].status().code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(acks[101].status().message().find("event.source"), std::string::npos);
  EXPECT_EQ(acks[102].status().code(), 0);
  // Still usable.
  req.Clear();
  auto* e = req.add_events();
  e->set_client_sequence(200);
  *e->mutable_event() = Event("after");
  ASSERT_TRUE(publish->Write(req));
  ASSERT_TRUE(publish->Read(&resp));
  EXPECT_EQ(resp.acks(0).client_sequence(), 200u);
  EXPECT_EQ(resp.acks(0).result().status().code(), 0);
  publish->WritesDone();
  EXPECT_TRUE(publish->Finish().ok());

  grpc::ClientContext sctx;
  sctx.set_deadline(In(20));
  auto sub = broker.stub().Subscribe(&sctx);
  v1::SubscribeRequest flow;
  flow.mutable_flow()->set_credits(5);
  ASSERT_TRUE(sub->Write(flow));  // before attach
  auto err = ReadUntil(*sub, v1::SubscribeResponse::kRequestError);
  EXPECT_EQ(err.request_error().code(), grpc::FAILED_PRECONDITION);
  v1::SubscribeRequest attach;
  attach.mutable_attach()->set_subscription("subscriptions/q");
  attach.mutable_attach()->set_max_in_flight(1);
  ASSERT_TRUE(sub->Write(attach));
  ReadUntil(*sub, v1::SubscribeResponse::kAttached);
  auto d = ReadUntil(*sub, v1::SubscribeResponse::kDeliveries);
  EXPECT_EQ(d.deliveries().deliveries_size(), 1);
  flow.mutable_flow()->set_credits(0);
  ASSERT_TRUE(sub->Write(flow));
  err = ReadUntil(*sub, v1::SubscribeResponse::kRequestError);
  EXPECT_EQ(err.request_error().code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(err.request_error().message().find("credits"), std::string::npos);
  v1::SubscribeRequest garbage;
  garbage.mutable_settle()->add_acks("no-such-lease");
  ASSERT_TRUE(sub->Write(garbage));
  auto results = ReadUntil(*sub, v1::SubscribeResponse::kSettleResults);
  EXPECT_EQ(results.settle_results().results(0).status().code(), grpc::INVALID_ARGUMENT);
  // The stream still works: grant a credit, the next delivery arrives.
  flow.mutable_flow()->set_credits(1);
  ASSERT_TRUE(sub->Write(flow));
  d = ReadUntil(*sub, v1::SubscribeResponse::kDeliveries);
  EXPECT_EQ(d.deliveries().deliveries_size(), 1);
  sctx.TryCancel();
}

// Subscribe is served from raw bytes: a request that is not a
// SubscribeRequest gets a request_error and the stream lives on.
TEST(BrokerBinaryTest, UnparseableSubscribeRequestIsRefusedAndTheStreamLivesOn) {
  BrokerProcess broker(NewTempDir("data"));
  CreateSubscription(broker.stub(), "q");
  auto channel = grpc::CreateChannel(broker.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(In(20));
  // Each step waits for its own completion.
  auto step = [&cq](intptr_t tag) {
    void* got = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&got, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(got), tag);
    return ok;
  };
  auto call = generic.PrepareCall(&ctx, "/pettube.broker.v1.Broker/Subscribe", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  auto send = [&](const std::string& bytes, intptr_t tag) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, reinterpret_cast<void*>(tag));
    return step(tag);
  };
  auto receive = [&](intptr_t tag) {
    grpc::ByteBuffer buffer;
    call->Read(&buffer, reinterpret_cast<void*>(tag));
    v1::SubscribeResponse response;
    if (!step(tag)) return response;
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(buffer.Dump(&slices).ok());
    std::string bytes;
    for (const auto& piece : slices)
      bytes.append(reinterpret_cast<const char*>(piece.begin()), piece.size());
    EXPECT_TRUE(response.ParseFromString(bytes));
    return response;
  };
  ASSERT_TRUE(send(std::string("\xff\xff\xff", 3), 2));  // a truncated varint tag
  v1::SubscribeResponse error = receive(3);
  ASSERT_EQ(error.response_case(), v1::SubscribeResponse::kRequestError);
  EXPECT_EQ(error.request_error().code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(error.request_error().message().find("SubscribeRequest"), std::string::npos);
  v1::SubscribeRequest attach;
  attach.mutable_attach()->set_subscription("subscriptions/q");
  attach.mutable_attach()->set_max_in_flight(1);
  ASSERT_TRUE(send(attach.SerializeAsString(), 4));
  EXPECT_EQ(receive(5).response_case(), v1::SubscribeResponse::kAttached);
  ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(6));
  step(6);
  cq.Shutdown();
  void* ignored;
  bool ok;
  while (cq.Next(&ignored, &ok)) {
  }
}

// A consumer that acks and closes its side at once (a graceful drain):
// requests are handled side by side, but the end of the stream only after
// every request before it, so none of the acks is lost to the release of
// the stream's leases. Repeated to give a reordering a chance to show.
TEST(BrokerBinaryTest, AcksSentJustBeforeClosingAreAllApplied) {
  BrokerProcess broker(NewTempDir("data"));
  CreateSubscription(broker.stub(), "q");
  constexpr int kRounds = 20, kPerRound = 50;
  for (int round = 0; round < kRounds; ++round) {
    grpc::ClientContext pctx;
    pctx.set_deadline(In(10));
    v1::PublishRequest req;
    for (int i = 0; i < kPerRound; ++i) *req.add_events() = Event(absl::StrCat(round, "-", i));
    v1::PublishResponse resp;
    ASSERT_TRUE(broker.stub().Publish(&pctx, req, &resp).ok());
    grpc::ClientContext ctx;
    ctx.set_deadline(In(10));
    auto stream = Attach(broker.stub(), &ctx, "q", kPerRound, /*confirm=*/false);
    ReadUntil(*stream, v1::SubscribeResponse::kAttached);
    std::vector<std::string> leases;
    while (leases.size() < kPerRound) {
      auto batch = ReadUntil(*stream, v1::SubscribeResponse::kDeliveries);
      if (batch.response_case() != v1::SubscribeResponse::kDeliveries) break;
      for (const auto& d : batch.deliveries().deliveries()) leases.push_back(d.lease_id());
    }
    ASSERT_EQ(leases.size(), static_cast<size_t>(kPerRound));
    // Several small settles and a flow, then the end of the stream.
    for (int i = 0; i < kPerRound; i += 10) {
      v1::SubscribeRequest settle;
      for (int k = i; k < i + 10; ++k) settle.mutable_settle()->add_acks(leases[k]);
      ASSERT_TRUE(stream->Write(settle));
    }
    v1::SubscribeRequest flow;
    flow.mutable_flow()->set_credits(1);
    ASSERT_TRUE(stream->Write(flow));
    stream->WritesDone();
    v1::SubscribeResponse rest;
    while (stream->Read(&rest)) {
    }
    EXPECT_TRUE(stream->Finish().ok());
    grpc::ClientContext get_ctx;
    v1::GetSubscriptionRequest get;
    get.set_name("subscriptions/q");
    v1::Subscription sub;
    ASSERT_TRUE(broker.stub().GetSubscription(&get_ctx, get, &sub).ok());
    ASSERT_EQ(sub.stats().backlog(), 0) << "round " << round;
    EXPECT_EQ(sub.stats().redelivered(), 0) << "round " << round;
  }
}

TEST(BrokerBinaryTest, AttachingToAnUnknownSubscriptionEndsWithNotFound) {
  BrokerProcess broker(NewTempDir("data"));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(10));
  auto stream = Attach(broker.stub(), &ctx, "missing", 1, false);
  v1::SubscribeResponse r;
  while (stream->Read(&r)) {
  }
  const grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND);
  EXPECT_NE(s.error_message().find("subscriptions/missing"), std::string::npos);
}

TEST(BrokerBinaryTest, DroppedStreamsDeliveriesGoToAnotherConsumerAtOnce) {
  BrokerProcess broker(NewTempDir("data"));
  CreateSubscription(broker.stub(), "q", /*ack_deadline_s=*/600);
  {
    grpc::ClientContext ctx;
    v1::PublishRequest req;
    *req.add_events() = Event("only");
    v1::PublishResponse resp;
    ASSERT_TRUE(broker.stub().Publish(&ctx, req, &resp).ok());
  }
  auto first_ctx = std::make_unique<grpc::ClientContext>();
  auto first = Attach(broker.stub(), first_ctx.get(), "q", 1, false);
  auto d1 = ReadUntil(*first, v1::SubscribeResponse::kDeliveries);
  ASSERT_EQ(d1.deliveries().deliveries(0).event().id(), "only");

  grpc::ClientContext second_ctx;
  second_ctx.set_deadline(In(10));  // far less than the 600 s ack deadline
  auto second = Attach(broker.stub(), &second_ctx, "q", 1, false);
  ReadUntil(*second, v1::SubscribeResponse::kAttached);
  first_ctx->TryCancel();  // the first consumer vanishes
  auto d2 = ReadUntil(*second, v1::SubscribeResponse::kDeliveries);
  ASSERT_EQ(d2.deliveries().deliveries_size(), 1);
  EXPECT_EQ(d2.deliveries().deliveries(0).event().id(), "only");
  EXPECT_EQ(d2.deliveries().deliveries(0).attempt(), 2);
  second_ctx.TryCancel();
}

TEST(BrokerBinaryTest, WatchSubscriptionStatsPushesChangesAndEndsCleanlyOnDrain) {
  BrokerProcess broker(NewTempDir("data"));
  CreateSubscription(broker.stub(), "jobs");
  grpc::ClientContext ctx;
  ctx.set_deadline(In(20));
  v1::WatchSubscriptionStatsRequest req;
  req.set_name("subscriptions/jobs");
  req.mutable_min_interval()->set_nanos(20 * 1000 * 1000);
  auto watch = broker.stub().WatchSubscriptionStats(&ctx, req);
  v1::SubscriptionStats stats;
  ASSERT_TRUE(watch->Read(&stats));
  EXPECT_EQ(stats.backlog(), 0);
  {
    grpc::ClientContext pctx;
    pctx.set_deadline(In(10));
    v1::PublishRequest preq;
    for (int i = 0; i < 3; ++i) *preq.add_events() = Event(absl::StrCat("w", i));
    v1::PublishResponse presp;
    ASSERT_TRUE(broker.stub().Publish(&pctx, preq, &presp).ok());
  }
  ASSERT_TRUE(watch->Read(&stats));
  EXPECT_EQ(stats.backlog(), 3);
  // SIGTERM drains: the watch ends OK, the process exits 0.
  broker.process().Signal(SIGTERM);
  while (watch->Read(&stats)) {
  }
  const grpc::Status s = watch->Finish();
  EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  auto code = broker.process().WaitForExit(absl::Seconds(20));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
}

// Issue 13, defect 3, as a user met it: dead letters, then retention
// empties the log, then RedriveDeadLetters. The broker must answer (not
// abort) and deliver every dead letter, also after another restart.
TEST(BrokerBinaryTest, RedriveAfterRetentionAnswersAndDeliversTheDeadLetters) {
  const std::string data = NewTempDir("data");
  {
    BrokerProcess broker(data);
    grpc::ClientContext ctx;
    ctx.set_deadline(In(10));
    v1::CreateSubscriptionRequest req;
    req.set_subscription_id("dlq");
    req.mutable_subscription()->set_max_delivery_attempts(1);
    req.mutable_subscription()->mutable_dead_letter_policy()->set_enabled(true);
    v1::Subscription sub;
    ASSERT_TRUE(broker.stub().CreateSubscription(&ctx, req, &sub).ok());
    grpc::ClientContext pctx;
    pctx.set_deadline(In(10));
    v1::PublishRequest preq;
    for (int i = 0; i < 10; ++i) *preq.add_events() = Event(absl::StrCat("d", i));
    v1::PublishResponse presp;
    ASSERT_TRUE(broker.stub().Publish(&pctx, preq, &presp).ok());
    grpc::ClientContext sctx;
    sctx.set_deadline(In(20));
    auto stream = Attach(broker.stub(), &sctx, "dlq", 100, /*confirm=*/true);
    ReadUntil(*stream, v1::SubscribeResponse::kAttached);
    int nacked = 0;
    // Deliveries and confirmations interleave: count both from one reader.
    int confirmed = 0;
    v1::SubscribeResponse r;
    while ((nacked < 10 || confirmed < 10) && stream->Read(&r)) {
      if (r.has_settle_results()) confirmed += r.settle_results().results_size();
      if (!r.has_deliveries()) continue;
      v1::SubscribeRequest settle;
      for (const auto& d : r.deliveries().deliveries()) {
        settle.mutable_settle()->add_nacks()->set_lease_id(d.lease_id());
        ++nacked;
      }
      ASSERT_TRUE(stream->Write(settle));
    }
    ASSERT_EQ(nacked, 10);
    ASSERT_EQ(confirmed, 10);
    sctx.TryCancel();
    grpc::ClientContext lctx;
    v1::ListDeadLettersRequest lreq;
    lreq.set_subscription("subscriptions/dlq");
    v1::ListDeadLettersResponse lresp;
    ASSERT_TRUE(broker.stub().ListDeadLetters(&lctx, lreq, &lresp).ok());
    ASSERT_EQ(lresp.dead_letters_size(), 10);
    broker.process().Signal(SIGTERM);
    ASSERT_TRUE(broker.process().WaitForExit(absl::Seconds(20)).ok());
  }
  for (int round = 0; round < 2; ++round) {
    // Every event is older than a microsecond: retention at start empties
    // the log.
    BrokerProcess broker(data, {"--retention_max_age=1us"});
    if (round == 0) {
      grpc::ClientContext rctx;
      rctx.set_deadline(In(20));
      v1::RedriveDeadLettersRequest rreq;
      rreq.set_subscription("subscriptions/dlq");
      rreq.set_max_per_second(1000);
      v1::RedriveDeadLettersResponse rresp;
      const grpc::Status s = broker.stub().RedriveDeadLetters(&rctx, rreq, &rresp);
      ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
      EXPECT_EQ(rresp.redriven(), 10);
      grpc::ClientContext gctx;
      v1::GetSubscriptionRequest get;
      get.set_name("subscriptions/dlq");
      v1::Subscription sub;
      ASSERT_TRUE(broker.stub().GetSubscription(&gctx, get, &sub).ok());
      EXPECT_EQ(sub.stats().backlog(), 10);
      EXPECT_EQ(sub.stats().dead_letter_count(), 0);
    } else {
      // Restarted, retention ran again: the redriven events are delivered.
      grpc::ClientContext sctx;
      sctx.set_deadline(In(20));
      auto stream = Attach(broker.stub(), &sctx, "dlq", 100, /*confirm=*/true);
      ReadUntil(*stream, v1::SubscribeResponse::kAttached);
      std::set<std::string> ids;
      v1::SubscribeRequest settle;
      while (ids.size() < 10) {
        auto r = ReadUntil(*stream, v1::SubscribeResponse::kDeliveries);
        if (!r.has_deliveries()) break;
        for (const auto& d : r.deliveries().deliveries()) {
          ids.insert(d.event().id());
          settle.mutable_settle()->add_acks(d.lease_id());
        }
      }
      EXPECT_EQ(ids.size(), 10u);
      ASSERT_TRUE(stream->Write(settle));
      ReadUntil(*stream, v1::SubscribeResponse::kSettleResults);
      sctx.TryCancel();
    }
    broker.process().Signal(SIGTERM);
    auto code = broker.process().WaitForExit(absl::Seconds(20));
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 0);
  }
}

// Issue 13, defect 1, as a user met it: 40 events of 900 KB, one consumer
// with 64 credits and a default client (4 MiB receive limit). Every event
// arrives on its first attempt: no response is too big to take.
TEST(BrokerBinaryTest, LargeEventsReachADefaultClientOnTheirFirstAttempt) {
  BrokerProcess broker(NewTempDir("data"));
  CreateSubscription(broker.stub(), "big");
  for (int i = 0; i < 40; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(10));
    v1::PublishRequest req;
    CloudEvent e = Event(absl::StrCat("big", i));
    e.set_text_data(std::string(900 * 1000, 'b'));
    *req.add_events() = std::move(e);
    v1::PublishResponse resp;
    ASSERT_TRUE(broker.stub().Publish(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.results(0).status().code(), 0) << resp.results(0).status().message();
  }
  // A plain channel: the default 4 MiB receive limit.
  auto channel = grpc::CreateChannel(broker.address(), grpc::InsecureChannelCredentials());
  auto stub = Broker::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(30));
  auto stream = Attach(*stub, &ctx, "big", 64, /*confirm=*/false);
  ReadUntil(*stream, v1::SubscribeResponse::kAttached);
  std::set<std::string> ids;
  v1::SubscribeResponse r;
  while (ids.size() < 40 && stream->Read(&r)) {
    if (!r.has_deliveries()) continue;
    EXPECT_LE(r.ByteSizeLong(), size_t{4} << 20);
    for (const auto& d : r.deliveries().deliveries()) {
      EXPECT_EQ(d.attempt(), 1) << d.event().id();
      ids.insert(d.event().id());
    }
  }
  EXPECT_EQ(ids.size(), 40u);
  ctx.TryCancel();
  stream->Finish();
}

TEST(BrokerBinaryTest, NoAcknowledgedEventIsLostWhenKilledMidLoad) {
  const std::string data = NewTempDir("data");
  std::set<std::string> acked;
  {
    BrokerProcess broker(data);
    CreateSubscription(broker.stub(), "durable");
    absl::Mutex mu;
    absl::Notification enough;
    constexpr int kProducers = 4;
    constexpr int kPerProducer = 5000;
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        grpc::ClientContext ctx;
        ctx.set_deadline(In(60));
        auto stream = broker.stub().PublishStream(&ctx);
        // Writer: keep publishing until the stream breaks.
        std::thread writer([&] {
          for (int i = 0; i < kPerProducer; i += 50) {
            v1::PublishStreamRequest req;
            for (int j = i; j < i + 50; ++j) {
              auto* e = req.add_events();
              e->set_client_sequence(j);
              *e->mutable_event() = Event(absl::StrCat("p", p, "-", j));
            }
            if (!stream->Write(req)) return;
          }
          stream->WritesDone();
        });
        v1::PublishStreamResponse resp;
        while (stream->Read(&resp)) {
          absl::MutexLock lock(&mu);
          for (const auto& a : resp.acks()) {
            if (a.result().status().code() == 0) {
              acked.insert(absl::StrCat("p", p, "-", a.client_sequence()));
            }
          }
          if (acked.size() >= 2000 && !enough.HasBeenNotified()) enough.Notify();
        }
        writer.join();
        stream->Finish();
      });
    }
    ASSERT_TRUE(enough.WaitForNotificationWithTimeout(absl::Seconds(60)));
    broker.process().Signal(SIGKILL);
    auto code = broker.process().WaitForExit(absl::Seconds(10));
    ASSERT_TRUE(code.ok());
    EXPECT_EQ(*code, 128 + SIGKILL);
    for (auto& t : producers) t.join();
  }
  ASSERT_GE(acked.size(), 2000u);

  // Restart on the same data: every acknowledged event is delivered.
  BrokerProcess broker(data);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(60));
  auto stream = Attach(broker.stub(), &ctx, "durable", 1000, false);
  std::set<std::string> delivered;
  v1::SubscribeResponse r;
  size_t missing = acked.size();
  while (missing > 0 && stream->Read(&r)) {
    if (!r.has_deliveries()) continue;
    v1::SubscribeRequest settle;
    for (const auto& d : r.deliveries().deliveries()) {
      if (delivered.insert(d.event().id()).second && acked.count(d.event().id())) --missing;
      settle.mutable_settle()->add_acks(d.lease_id());
    }
    v1::SubscribeRequest flow;
    flow.mutable_flow()->set_credits(r.deliveries().deliveries_size());
    stream->Write(settle);
    stream->Write(flow);
  }
  EXPECT_EQ(missing, 0u) << "acknowledged events lost after SIGKILL";
  ctx.TryCancel();
}

}  // namespace
}  // namespace pettube
