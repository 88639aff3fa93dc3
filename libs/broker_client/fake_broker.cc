#include "libs/broker_client/fake_broker.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/broker/event_validation.h"

namespace pettube::broker_client {
namespace {

using ::io::cloudevents::v1::CloudEvent;
using ::pettube::broker::v1::Delivery;
using ::pettube::broker::v1::PublishAck;
using ::pettube::broker::v1::PublishRequest;
using ::pettube::broker::v1::PublishResponse;
using ::pettube::broker::v1::PublishResult;
using ::pettube::broker::v1::PublishStreamRequest;
using ::pettube::broker::v1::PublishStreamResponse;
using ::pettube::broker::v1::SubscribeRequest;
using ::pettube::broker::v1::SubscribeResponse;

constexpr int kMaxCredits = 10000;

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(d / absl::Nanoseconds(1)));
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
}

absl::Duration FromDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace

// What both streaming reactors share: an outbox written one message at a
// time and a Finish that waits for it to drain. All members are guarded by
// the broker's mu_; reactions take it.
template <typename Request, typename Response>
class FakeBroker::StreamBase : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit StreamBase(FakeBroker* broker) : broker_(broker) {}

  void SendLocked(Response response) {
    outbox_.push_back(std::move(response));
    PumpLocked();
  }

  // Ends the stream with `status` once the outbox is written. The first
  // call wins.
  void FinishLocked(grpc::Status status) {
    if (finish_wanted_) return;
    finish_wanted_ = true;
    status_ = std::move(status);
    OnFinishLocked();
    PumpLocked();
  }

  bool finish_wanted() const { return finish_wanted_; }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&broker_->mu_);
    writing_ = false;
    if (!ok) {
      // The client is gone: nothing more can be written.
      outbox_.clear();
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
    }
    PumpLocked();
  }

 protected:
  virtual void OnFinishLocked() {}

  FakeBroker* const broker_;
  Request request_;

 private:
  void PumpLocked() {
    if (writing_ || finished_) return;
    if (!outbox_.empty()) {
      current_ = std::move(outbox_.front());
      outbox_.pop_front();
      writing_ = true;
      this->StartWrite(&current_);
      return;
    }
    if (finish_wanted_) {
      finished_ = true;
      this->Finish(status_);
    }
  }

  std::deque<Response> outbox_;
  Response current_;
  bool writing_ = false;
  bool finish_wanted_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

class FakeBroker::PublishReactor final
    : public StreamBase<PublishStreamRequest, PublishStreamResponse> {
 public:
  explicit PublishReactor(FakeBroker* broker) : StreamBase(broker) {}

  void Begin() { this->StartRead(&request_); }
  void OnReadDone(bool ok) override { broker_->OnPublishRead(this, ok); }
  void OnDone() override {
    {
      absl::MutexLock lock(&broker_->mu_);
      broker_->publish_streams_.erase(this);
      --broker_->live_reactors_;
    }
    delete this;
  }

  const PublishStreamRequest& request() const { return request_; }

  // Events received and not acked on this stream.
  int64_t unacked = 0;
  // Acks kept back by HoldPublishAcks.
  std::vector<PublishAck> held;
};

class FakeBroker::SubscribeReactor final : public StreamBase<SubscribeRequest, SubscribeResponse> {
 public:
  explicit SubscribeReactor(FakeBroker* broker) : StreamBase(broker) {}

  void Begin() { this->StartRead(&request_); }
  void OnReadDone(bool ok) override { broker_->OnSubscribeRead(this, ok); }
  void OnDone() override {
    {
      absl::MutexLock lock(&broker_->mu_);
      broker_->subscribe_streams_.erase(this);
      --broker_->live_reactors_;
    }
    delete this;
  }

  const SubscribeRequest& request() const { return request_; }

  // Set by Attach.
  std::string subscription;
  int credits = 0;
  absl::flat_hash_set<std::string> leases;

 private:
  // A finished stream's leases are released at once, as the real broker's.
  void OnFinishLocked() override { broker_->ReleaseConsumerLocked(this); }
};

FakeBroker::FakeBroker() : expiry_thread_([this] { ExpireLeases(); }) {}

FakeBroker::~FakeBroker() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  expiry_thread_.join();
  absl::MutexLock lock(&mu_);
  const auto done = [this]() {
    mu_.AssertReaderHeld();
    return live_reactors_ == 0;
  };
  mu_.Await(absl::Condition(&done));
}

void FakeBroker::AddSubscription(absl::string_view name, absl::Duration ack_deadline) {
  absl::MutexLock lock(&mu_);
  Subscription& subscription = subscriptions_[std::string(name)];
  // Numbered from 1 as added, like the real broker's, for the lease ids.
  if (subscription.id == 0) subscription.id = subscriptions_.size();
  subscription.name = std::string(name);
  subscription.ack_deadline = ack_deadline;
  for (uint64_t sequence = 1; sequence <= log_.size(); ++sequence) {
    subscription.ready.push_back(sequence);
  }
}

void FakeBroker::SetEventRule(std::function<absl::Status(const CloudEvent&)> rule) {
  absl::MutexLock lock(&mu_);
  rule_ = std::move(rule);
}

void FakeBroker::BreakPublishStreamAfter(int stored_events) {
  absl::MutexLock lock(&mu_);
  break_after_ = stored_events;
}

void FakeBroker::HoldPublishAcks() {
  absl::MutexLock lock(&mu_);
  hold_acks_ = true;
}

void FakeBroker::ReleasePublishAcks() {
  absl::MutexLock lock(&mu_);
  hold_acks_ = false;
  for (PublishReactor* reactor : publish_streams_) {
    if (reactor->held.empty() || reactor->finish_wanted()) continue;
    PublishStreamResponse response;
    for (PublishAck& ack : reactor->held) *response.add_acks() = std::move(ack);
    reactor->unacked -= response.acks_size();
    reactor->held.clear();
    reactor->SendLocked(std::move(response));
  }
}

void FakeBroker::BreakSubscribeStreams() {
  absl::MutexLock lock(&mu_);
  for (SubscribeReactor* reactor : subscribe_streams_) {
    reactor->FinishLocked(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake broker: injected stream failure"));
  }
}

uint64_t FakeBroker::Append(const CloudEvent& event) {
  absl::MutexLock lock(&mu_);
  return StoreLocked(event).sequence();
}

FakeBroker::Stats FakeBroker::GetStats() {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool FakeBroker::WaitUntil(const std::function<bool(const Stats&)>& done, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto reached = [this, &done]() {
    mu_.AssertReaderHeld();
    return done(stats_);
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

std::vector<CloudEvent> FakeBroker::StoredEvents() {
  absl::MutexLock lock(&mu_);
  return log_;
}

std::vector<std::pair<std::string, std::string>> FakeBroker::ReceivedKeys() {
  absl::MutexLock lock(&mu_);
  return received_keys_;
}

int FakeBroker::ExtendsOf(const std::string& lease_id) {
  absl::MutexLock lock(&mu_);
  const auto it = extends_by_lease_.find(lease_id);
  return it == extends_by_lease_.end() ? 0 : it->second;
}

PublishResult FakeBroker::StoreLocked(const CloudEvent& event) {
  ++stats_.events_received;
  received_keys_.emplace_back(event.source(), event.id());
  PublishResult result;
  // The real broker's own check, so the fake cannot accept what it refuses.
  absl::Status invalid = broker::ValidateEvent(event, kMaxEventBytes);
  if (invalid.ok() && rule_) invalid = rule_(event);
  if (!invalid.ok()) {
    ++stats_.refused;
    result.mutable_status()->set_code(static_cast<int32_t>(invalid.code()));
    result.mutable_status()->set_message(std::string(invalid.message()));
    return result;
  }
  const std::string key = absl::StrCat(event.source(), std::string(1, '\0'), event.id());
  if (const auto it = dedup_.find(key); it != dedup_.end()) {
    ++stats_.duplicates;
    result.set_sequence(it->second);
    result.set_duplicate(true);
    return result;
  }
  log_.push_back(event);
  publish_times_.push_back(absl::Now());
  const uint64_t sequence = log_.size();
  dedup_[key] = sequence;
  ++stats_.stored;
  for (auto& [name, subscription] : subscriptions_) {
    subscription.ready.push_back(sequence);
    DispatchLocked(subscription);
  }
  result.set_sequence(sequence);
  return result;
}

void FakeBroker::DispatchLocked(Subscription& subscription) {
  absl::flat_hash_map<SubscribeReactor*, SubscribeResponse> batches;
  const absl::Time now = absl::Now();
  while (!subscription.ready.empty()) {
    SubscribeReactor* consumer = nullptr;
    const size_t n = subscription.consumers.size();
    for (size_t i = 0; i < n; ++i) {
      const size_t index = (subscription.next_consumer + i) % n;
      if (subscription.consumers[index]->credits > 0) {
        consumer = subscription.consumers[index];
        subscription.next_consumer = (index + 1) % n;
        break;
      }
    }
    if (consumer == nullptr) break;
    const uint64_t sequence = subscription.ready.front();
    subscription.ready.pop_front();
    const int attempt = ++subscription.attempts[sequence];
    // Shaped like the real broker's, so clients see what they will see live.
    const std::string lease_id = broker::FormatLeaseId(
        {subscription.id, sequence, static_cast<uint64_t>(attempt), ++next_lease_});
    const absl::Time deadline = now + subscription.ack_deadline;
    leases_[lease_id] = Lease{subscription.name, sequence, consumer, deadline};
    consumer->leases.insert(lease_id);
    --consumer->credits;
    ++stats_.deliveries;
    if (attempt > 1) ++stats_.redeliveries;
    stats_.max_leased = std::max(stats_.max_leased, static_cast<int64_t>(consumer->leases.size()));
    Delivery* delivery = batches[consumer].mutable_deliveries()->add_deliveries();
    delivery->set_lease_id(lease_id);
    *delivery->mutable_event() = log_[sequence - 1];
    delivery->set_sequence(sequence);
    delivery->set_attempt(attempt);
    SetTimestamp(publish_times_[sequence - 1], delivery->mutable_publish_time());
    SetTimestamp(deadline, delivery->mutable_lease_deadline());
  }
  if (!batches.empty()) ++lease_epoch_;
  for (auto& [consumer, response] : batches) consumer->SendLocked(std::move(response));
}

void FakeBroker::ReleaseConsumerLocked(SubscribeReactor* consumer) {
  const auto it = subscriptions_.find(consumer->subscription);
  if (it == subscriptions_.end()) return;
  Subscription& subscription = it->second;
  auto& consumers = subscription.consumers;
  consumers.erase(std::remove(consumers.begin(), consumers.end(), consumer), consumers.end());
  subscription.next_consumer = 0;
  for (const std::string& lease_id : consumer->leases) {
    const auto lease = leases_.find(lease_id);
    if (lease == leases_.end()) continue;
    subscription.ready.push_front(lease->second.sequence);
    leases_.erase(lease);
    ++stats_.released;
  }
  consumer->leases.clear();
  consumer->credits = 0;
  consumer->subscription.clear();
  DispatchLocked(subscription);
}

grpc::ServerUnaryReactor* FakeBroker::Publish(grpc::CallbackServerContext* context,
                                              const PublishRequest* request,
                                              PublishResponse* response) {
  {
    absl::MutexLock lock(&mu_);
    ++stats_.publish_requests;
    for (const CloudEvent& event : request->events()) {
      *response->add_results() = StoreLocked(event);
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerBidiReactor<PublishStreamRequest, PublishStreamResponse>* FakeBroker::PublishStream(
    grpc::CallbackServerContext* /*context*/) {
  absl::MutexLock lock(&mu_);
  auto* reactor = new PublishReactor(this);
  publish_streams_.insert(reactor);
  ++live_reactors_;
  ++stats_.publish_streams;
  reactor->Begin();
  return reactor;
}

void FakeBroker::OnPublishRead(PublishReactor* reactor, bool ok) {
  absl::MutexLock lock(&mu_);
  if (!ok) {
    reactor->FinishLocked(grpc::Status::OK);
    return;
  }
  // A broken stream ignores whatever is still arriving.
  if (reactor->finish_wanted()) return;
  ++stats_.publish_requests;
  PublishStreamResponse response;
  for (const auto& item : reactor->request().events()) {
    const PublishResult result = StoreLocked(item.event());
    ++reactor->unacked;
    stats_.max_unacked = std::max(stats_.max_unacked, reactor->unacked);
    const bool stored_now = result.status().code() == 0 && !result.duplicate();
    if (stored_now && break_after_ > 0 && --break_after_ == 0) {
      // Stored, but the acks of this request are lost with the stream.
      reactor->FinishLocked(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "fake broker: injected stream failure"));
      return;
    }
    PublishAck* ack = response.add_acks();
    ack->set_client_sequence(item.client_sequence());
    *ack->mutable_result() = result;
  }
  if (hold_acks_) {
    for (PublishAck& ack : *response.mutable_acks()) reactor->held.push_back(std::move(ack));
  } else if (response.acks_size() > 0) {
    reactor->unacked -= response.acks_size();
    reactor->SendLocked(std::move(response));
  }
  reactor->Begin();
}

grpc::ServerBidiReactor<SubscribeRequest, SubscribeResponse>* FakeBroker::Subscribe(
    grpc::CallbackServerContext* /*context*/) {
  absl::MutexLock lock(&mu_);
  auto* reactor = new SubscribeReactor(this);
  subscribe_streams_.insert(reactor);
  ++live_reactors_;
  reactor->Begin();
  return reactor;
}

void FakeBroker::OnSubscribeRead(SubscribeReactor* reactor, bool ok) {
  absl::MutexLock lock(&mu_);
  if (!ok) {
    reactor->FinishLocked(grpc::Status::OK);
    return;
  }
  if (reactor->finish_wanted()) return;
  const SubscribeRequest& request = reactor->request();
  if (reactor->subscription.empty()) {
    if (!request.has_attach()) {
      reactor->FinishLocked(ToGrpc(absl::InvalidArgumentError("first message: must be attach")));
      return;
    }
    if (absl::Status s =
            broker::ValidateName(request.attach().subscription(), "attach.subscription");
        !s.ok()) {
      reactor->FinishLocked(ToGrpc(s));
      return;
    }
    const auto it = subscriptions_.find(request.attach().subscription());
    if (it == subscriptions_.end()) {
      reactor->FinishLocked(ToGrpc(absl::NotFoundError(
          absl::StrCat("subscription \"", request.attach().subscription(), "\" not found"))));
      return;
    }
    const int credits = request.attach().max_in_flight();
    if (credits < 1 || credits > kMaxCredits) {
      reactor->FinishLocked(ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("attach.max_in_flight: must be 1 to 10000, got ", credits))));
      return;
    }
    Subscription& subscription = it->second;
    reactor->subscription = subscription.name;
    reactor->credits = credits;
    subscription.consumers.push_back(reactor);
    ++stats_.attaches;
    SubscribeResponse attached;
    auto* settings = attached.mutable_attached()->mutable_subscription();
    settings->set_name(subscription.name);
    SetDuration(subscription.ack_deadline, settings->mutable_ack_deadline());
    reactor->SendLocked(std::move(attached));
    DispatchLocked(subscription);
    reactor->Begin();
    return;
  }
  Subscription& subscription = subscriptions_[reactor->subscription];
  // A lease is only this stream's to settle while it is still leased.
  const auto own_lease = [&](const std::string& lease_id) -> Lease* {
    const auto it = leases_.find(lease_id);
    if (it == leases_.end() || it->second.consumer != reactor) {
      ++stats_.refused_settlements;
      return nullptr;
    }
    return &it->second;
  };
  // A bad request is answered on the stream, which lives on.
  const auto refuse = [&](const absl::Status& status) {
    ++stats_.refused_requests;
    SubscribeResponse response;
    response.mutable_request_error()->set_code(static_cast<int32_t>(status.code()));
    response.mutable_request_error()->set_message(std::string(status.message()));
    reactor->SendLocked(std::move(response));
  };
  switch (request.request_case()) {
    case SubscribeRequest::kFlow: {
      const int credits = request.flow().credits();
      if (credits < 1 || reactor->credits + credits > kMaxCredits) {
        refuse(absl::InvalidArgumentError(absl::StrCat(
            "flow.credits: must be at least 1 and keep the total at most 10000, got ", credits)));
        break;
      }
      reactor->credits += credits;
      ++stats_.flow_messages;
      stats_.credits_granted += credits;
      break;
    }
    case SubscribeRequest::kSettle: {
      ++stats_.settle_messages;
      stats_.max_settle_batch = std::max<int64_t>(
          stats_.max_settle_batch, request.settle().acks_size() + request.settle().nacks_size() +
                                       request.settle().extends_size());
      const absl::Time now = absl::Now();
      for (const std::string& lease_id : request.settle().acks()) {
        if (own_lease(lease_id) == nullptr) continue;
        ++stats_.acks;
        leases_.erase(lease_id);
        reactor->leases.erase(lease_id);
      }
      for (const auto& nack : request.settle().nacks()) {
        Lease* lease = own_lease(nack.lease_id());
        if (lease == nullptr) continue;
        ++stats_.nacks;
        stats_.nack_errors.push_back(nack.error());
        subscription.ready.push_back(lease->sequence);
        leases_.erase(nack.lease_id());
        reactor->leases.erase(nack.lease_id());
      }
      for (const auto& extend : request.settle().extends()) {
        Lease* lease = own_lease(extend.lease_id());
        if (lease == nullptr) continue;
        ++stats_.extends;
        ++extends_by_lease_[extend.lease_id()];
        lease->deadline = now + FromDuration(extend.ack_deadline());
        ++lease_epoch_;
      }
      break;
    }
    case SubscribeRequest::kAttach:
      refuse(absl::FailedPreconditionError("attach: the stream is already attached"));
      break;
    case SubscribeRequest::REQUEST_NOT_SET:
      refuse(absl::InvalidArgumentError("request: none of attach, flow, settle is set"));
      break;
  }
  DispatchLocked(subscription);
  reactor->Begin();
}

void FakeBroker::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    absl::Time next = absl::InfiniteFuture();
    for (const auto& [id, lease] : leases_) next = std::min(next, lease.deadline);
    // Sleeps until the earliest lease deadline, or until leases change.
    const uint64_t seen = lease_epoch_;
    const auto changed = [this, seen]() {
      mu_.AssertReaderHeld();
      return stopping_ || lease_epoch_ != seen;
    };
    mu_.AwaitWithDeadline(absl::Condition(&changed), next);
    if (stopping_) return;
    const absl::Time now = absl::Now();
    std::vector<std::string> expired;
    for (const auto& [id, lease] : leases_) {
      if (lease.deadline <= now) expired.push_back(id);
    }
    absl::flat_hash_set<std::string> touched;
    for (const std::string& id : expired) {
      const Lease lease = leases_[id];
      leases_.erase(id);
      lease.consumer->leases.erase(id);
      ++stats_.expired;
      subscriptions_[lease.subscription].ready.push_front(lease.sequence);
      touched.insert(lease.subscription);
    }
    for (const std::string& name : touched) DispatchLocked(subscriptions_[name]);
  }
}

absl::StatusOr<std::unique_ptr<FakeBrokerServer>> FakeBrokerServer::Start() {
  std::unique_ptr<FakeBrokerServer> server(new FakeBrokerServer());
  server->broker_ = std::make_unique<FakeBroker>();
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(server->broker_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || port == 0) {
    return absl::UnavailableError("fake broker: cannot listen on 127.0.0.1:0");
  }
  server->address_ = absl::StrCat("127.0.0.1:", port);
  return server;
}

FakeBrokerServer::~FakeBrokerServer() {
  if (server_ != nullptr) {
    // Open streams are cancelled at once: clients under test must cope.
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }
  broker_.reset();
}

std::shared_ptr<grpc::Channel> FakeBrokerServer::NewChannel() const {
  return grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
}

}  // namespace pettube::broker_client
