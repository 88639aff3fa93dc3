#include "services/broker/broker_service.h"

#include <atomic>
#include <deque>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/server/unary.h"
#include "libs/status/grpc_status.h"
#include "services/broker/watch_stats_reactor.h"

namespace pettube::broker {
namespace {

using status::ToGrpcStatus;

// PublishStream: each request's events are appended and answered by acks
// carrying the client's sequence numbers, in completion order. Reads pause
// while too many events await their acks (backpressure), so a fast producer
// cannot grow the broker's memory without bound.
class PublishStreamReactor
    : public grpc::ServerBidiReactor<v1::PublishStreamRequest, v1::PublishStreamResponse> {
 public:
  explicit PublishStreamReactor(Broker& broker) : broker_(broker) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    std::vector<CloudEvent> events;
    std::vector<uint64_t> sequences;
    events.reserve(request_.events_size());
    for (v1::PublishStreamEvent& e : *request_.mutable_events()) {
      sequences.push_back(e.client_sequence());
      events.push_back(std::move(*e.mutable_event()));
    }
    request_.Clear();
    bool read_more;
    {
      absl::MutexLock lock(&mu_);
      outstanding_ += static_cast<int64_t>(events.size());
      read_more = outstanding_ < kMaxOutstanding;
      read_paused_ = !read_more;
    }
    if (!events.empty()) {
      refs_.fetch_add(1);
      broker_.Publish(std::move(events), [this, sequences = std::move(sequences)](
                                             std::vector<v1::PublishResult> results) {
        {
          absl::MutexLock lock(&mu_);
          for (size_t i = 0; i < results.size(); ++i) {
            v1::PublishAck ack;
            ack.set_client_sequence(sequences[i]);
            *ack.mutable_result() = std::move(results[i]);
            acks_.push_back(std::move(ack));
          }
          outstanding_ -= static_cast<int64_t>(results.size());
          ResumeReadLocked();
          MaybeWriteLocked();
          MaybeFinishLocked();
        }
        Unref();
      });
    }
    if (read_more) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) broken_ = true;
    MaybeWriteLocked();
    ResumeReadLocked();
    MaybeFinishLocked();
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;  // no more StartRead/StartWrite/Finish
    }
    Unref();
  }

 private:
  static constexpr int64_t kMaxOutstanding = 8192;
  static constexpr size_t kMaxAcksPerMessage = 1024;

  void ResumeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_paused_ && !finished_ && !done_ && outstanding_ < kMaxOutstanding / 2) {
      read_paused_ = false;
      StartRead(&request_);
    }
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || broken_ || done_ || acks_.empty()) return;
    response_.Clear();
    while (!acks_.empty() && static_cast<size_t>(response_.acks_size()) < kMaxAcksPerMessage) {
      *response_.add_acks() = std::move(acks_.front());
      acks_.pop_front();
    }
    writing_ = true;
    StartWrite(&response_);
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_ || done_) return;
    if (broken_ || (reads_done_ && outstanding_ == 0 && acks_.empty())) {
      finished_ = true;
      Finish(broken_ ? grpc::Status(grpc::CANCELLED, "stream broken") : grpc::Status::OK);
    }
  }

  // Broker callbacks may still arrive after OnDone (a client that hung up
  // with events in the committer): one reference for the call, one per
  // publish in flight; the last one out deletes.
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  Broker& broker_;
  v1::PublishStreamRequest request_;
  v1::PublishStreamResponse response_;
  absl::Mutex mu_;
  std::deque<v1::PublishAck> acks_ ABSL_GUARDED_BY(mu_);
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> refs_{1};
};

// A message as the bytes gRPC sends.
grpc::ByteBuffer ToByteBuffer(std::string bytes) {
  auto* owned = new std::string(std::move(bytes));
  grpc::Slice slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
  return grpc::ByteBuffer(&slice, 1);
}

// Subscribe: one consumer attached to one subscription. The broker pushes
// deliveries (under its lock: Deliver only queues and starts a write);
// writes go out one at a time, each carrying everything queued.
//
// The stream is handled as raw bytes (the method is registered raw): each
// request is parsed here, and deliveries are written with the events'
// stored bytes copied in (EncodeDeliveries) rather than parsed and
// serialized again. Clients see ordinary SubscribeResponse messages.
//
// Once attached, reading runs ahead of handling: the next read starts
// before a request is handled, so a consumer's settle and the flow behind
// it are handled side by side (at most kMaxConcurrentRequests at once)
// instead of each waiting for the previous one. Settlements and flow
// grants are independent, so their relative order does not matter; the
// attach is handled before anything after it, and the end of the client's
// side after everything before it.
class SubscribeReactor : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                         public Consumer {
 public:
  explicit SubscribeReactor(Broker& broker) : broker_(broker) { StartRead(&request_bytes_); }

  // Consumer (called by the broker with its lock held).
  void Deliver(OutboundDelivery delivery) override {
    absl::MutexLock lock(&mu_);
    deliveries_.push_back(std::move(delivery));
    MaybeWriteLocked();
  }
  void SettleResults(std::vector<v1::SettleResult> results) override {
    absl::MutexLock lock(&mu_);
    for (auto& r : results) settle_results_.push_back(std::move(r));
    MaybeWriteLocked();
  }
  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    closed_by_broker_ = true;
    close_status_ = status;
    MaybeWriteLocked();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      bool end_now;
      {
        absl::MutexLock lock(&mu_);
        reading_ = false;
        reads_ended_ = true;
        end_now = handling_ == 0;
        end_pending_ = !end_now;
      }
      if (end_now) EndOfRequests();
      return;
    }
    v1::SubscribeRequest request;
    const bool parsed =
        grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(&request_bytes_, &request)
            .ok();
    bool read_more;
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      ++handling_;
      // Before the attach is handled nothing may overtake it.
      read_more = attached_ && ShouldReadLocked();
      if (read_more) reading_ = true;
    }
    if (read_more) StartRead(&request_bytes_);
    if (!parsed) {
      RequestError(absl::InvalidArgumentError("request: not a SubscribeRequest message"));
    } else {
      HandleRequest(request);
    }
    bool end_now;
    {
      absl::MutexLock lock(&mu_);
      --handling_;
      read_more = ShouldReadLocked();
      if (read_more) reading_ = true;
      end_now = end_pending_ && handling_ == 0;
      if (end_now) end_pending_ = false;
    }
    if (read_more) StartRead(&request_bytes_);
    if (end_now) EndOfRequests();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    // A failed write means the client is gone; OnReadDone(false) follows
    // and detaches.
    if (!ok) broken_ = true;
    MaybeWriteLocked();
  }

  void OnDone() override {
    // After Detach returns the broker never calls this consumer again.
    Detach();
    delete this;
  }

 private:
  static constexpr size_t kMaxDeliveriesPerMessage = 256;

  // Requests handled at once on one stream, at most.
  static constexpr int kMaxConcurrentRequests = 4;

  bool ShouldReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !reading_ && !reads_ended_ && !closing_ && !finished_ &&
           handling_ < kMaxConcurrentRequests;
  }

  // The client closed its side or the stream broke, and every request it
  // sent before is handled: release what it held at once, and end the call.
  void EndOfRequests() {
    Detach();
    absl::MutexLock lock(&mu_);
    closing_ = true;
    MaybeWriteLocked();
  }

  // Acts on one parsed request.
  void HandleRequest(const v1::SubscribeRequest& request) {
    switch (request.request_case()) {
      case v1::SubscribeRequest::kAttach:
        HandleAttach(request.attach());
        break;
      case v1::SubscribeRequest::kFlow:
        if (!attached_) {
          RequestError(absl::FailedPreconditionError("flow: attach first"));
        } else if (auto s = broker_.AddCredits(consumer_id_, request.flow().credits()); !s.ok()) {
          RequestError(s);
        }
        break;
      case v1::SubscribeRequest::kSettle:
        if (!attached_) {
          RequestError(absl::FailedPreconditionError("settle: attach first"));
        } else {
          broker_.Settle(consumer_id_, request.settle(), confirm_);
        }
        break;
      default:
        RequestError(
            absl::InvalidArgumentError("request: one of attach, flow, settle must be set"));
    }
  }

  void HandleAttach(const v1::Attach& a) {
    if (attached_ || attach_failed_) {
      RequestError(absl::FailedPreconditionError("attach: this stream is already attached"));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      attaching_ = true;  // hold deliveries until the Attached answer is queued
    }
    v1::Subscription settings;
    auto id = broker_.Attach(a.subscription(), a.max_in_flight(), a.consumer(), this, &settings);
    absl::MutexLock lock(&mu_);
    attaching_ = false;
    if (!id.ok()) {
      // Nothing to consume: the stream ends with the reason.
      attach_failed_ = true;
      closing_ = true;
      close_status_ = id.status();
      MaybeWriteLocked();
      return;
    }
    consumer_id_ = *id;
    attached_ = true;
    confirm_ = a.confirm_settlements();
    v1::SubscribeResponse attached;
    *attached.mutable_attached()->mutable_subscription() = std::move(settings);
    control_.push_front(std::move(attached));
    MaybeWriteLocked();
  }

  void RequestError(const absl::Status& s) {
    v1::SubscribeResponse r;
    *r.mutable_request_error() = ToProtoStatus(s);
    absl::MutexLock lock(&mu_);
    control_.push_back(std::move(r));
    MaybeWriteLocked();
  }

  void Detach() {
    bool attached;
    {
      absl::MutexLock lock(&mu_);
      attached = attached_ && !detached_;
      detached_ = true;
    }
    if (attached) broker_.Detach(consumer_id_);
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (broken_) {
      finished_ = true;
      Finish(grpc::Status(grpc::CANCELLED, "stream broken"));
      return;
    }
    // Deliveries released by Detach must not reach the client.
    if (closing_) deliveries_.clear();
    if (!control_.empty()) {
      response_ = ToByteBuffer(control_.front().SerializeAsString());
      control_.pop_front();
    } else if (attaching_) {
      return;
    } else if (!settle_results_.empty()) {
      v1::SubscribeResponse response;
      for (auto& r : settle_results_) {
        *response.mutable_settle_results()->add_results() = std::move(r);
      }
      settle_results_.clear();
      response_ = ToByteBuffer(response.SerializeAsString());
    } else if (!deliveries_.empty()) {
      // Bounded by count and bytes: the client must be able to take it.
      const size_t n =
          DeliveriesWithin(deliveries_, broker_.max_response_bytes(), kMaxDeliveriesPerMessage);
      std::string bytes;
      EncodeDeliveries(absl::MakeConstSpan(deliveries_.data(), n), &bytes);
      deliveries_.erase(deliveries_.begin(), deliveries_.begin() + n);
      response_ = ToByteBuffer(std::move(bytes));
    } else {
      if (closing_ || closed_by_broker_) {
        finished_ = true;
        Finish(ToGrpcStatus(close_status_));
      }
      return;
    }
    writing_ = true;
    StartWrite(&response_);
  }

  Broker& broker_;
  grpc::ByteBuffer request_bytes_;  // the read in flight
  // Set when the attach is handled, before any other request is read.
  ConsumerId consumer_id_ = 0;
  bool attached_ = false;
  bool attach_failed_ = false;
  bool confirm_ = false;

  absl::Mutex mu_;
  grpc::ByteBuffer response_ ABSL_GUARDED_BY(mu_);  // the write in flight
  std::deque<v1::SubscribeResponse> control_ ABSL_GUARDED_BY(mu_);
  std::vector<OutboundDelivery> deliveries_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SettleResult> settle_results_ ABSL_GUARDED_BY(mu_);
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
  bool attaching_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = true;       // a read is in flight (one from the start)
  bool reads_ended_ ABSL_GUARDED_BY(mu_) = false;  // the client's side ended
  int handling_ ABSL_GUARDED_BY(mu_) = 0;          // requests being handled
  bool end_pending_ ABSL_GUARDED_BY(mu_) = false;  // ended while requests were being handled
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_by_broker_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
};

// A stream refused before it started (credentials): ends at once.
template <typename Req, typename Resp>
class RefusedStream : public grpc::ServerBidiReactor<Req, Resp> {
 public:
  explicit RefusedStream(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::Status BrokerService::Authorize(const grpc::CallbackServerContext* context,
                                      absl::string_view scope) const {
  if (authenticator_ == nullptr) return absl::OkStatus();
  return authenticator_->Authorize(*context, scope).status();
}

absl::StatusOr<absl::Time> BrokerService::AuthorizeAny(
    const grpc::CallbackServerContext* context,
    std::initializer_list<absl::string_view> scopes) const {
  if (authenticator_ == nullptr) return absl::InfiniteFuture();
  auto caller = authenticator_->Authenticate(*context);
  if (!caller.ok()) return caller.status();
  for (absl::string_view scope : scopes) {
    if (caller->HasScope(scope)) return caller->expire_time;
  }
  return absl::PermissionDeniedError(absl::StrCat("the access token lacks scope \"",
                                                  absl::StrJoin(scopes, "\" or \""),
                                                  "\" needed for this call"));
}

grpc::ServerUnaryReactor* BrokerService::Publish(grpc::CallbackServerContext* context,
                                                 const v1::PublishRequest* request,
                                                 v1::PublishResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (auto s = Authorize(context, kPublishScope); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  if (request->events_size() == 0) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError("events: must not be empty")));
    return reactor;
  }
  if (request->events_size() > kMaxBatch) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "events: at most ", kMaxBatch, " per request, got ", request->events_size()))));
    return reactor;
  }
  std::vector<CloudEvent> events(request->events().begin(), request->events().end());
  broker_.Publish(std::move(events), [reactor, response](std::vector<v1::PublishResult> results) {
    for (auto& r : results) *response->add_results() = std::move(r);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerBidiReactor<v1::PublishStreamRequest, v1::PublishStreamResponse>*
BrokerService::PublishStream(grpc::CallbackServerContext* context) {
  if (auto s = Authorize(context, kPublishScope); !s.ok()) {
    return new RefusedStream<v1::PublishStreamRequest, v1::PublishStreamResponse>(s);
  }
  return new PublishStreamReactor(broker_);
}

grpc::ServerUnaryReactor* BrokerService::CreateSubscription(
    grpc::CallbackServerContext* context, const v1::CreateSubscriptionRequest* request,
    v1::Subscription* response) {
  if (auto s = Authorize(context, kAdminScope); !s.ok()) return server::FinishUnary(context, s);
  return server::FinishUnary(
      context, broker_.CreateSubscription(request->subscription_id(), request->subscription()),
      response);
}

grpc::ServerUnaryReactor* BrokerService::GetSubscription(grpc::CallbackServerContext* context,
                                                         const v1::GetSubscriptionRequest* request,
                                                         v1::Subscription* response) {
  if (auto s = Authorize(context, kSubscribeScope); !s.ok()) return server::FinishUnary(context, s);
  return server::FinishUnary(context, broker_.GetSubscription(request->name()), response);
}

grpc::ServerUnaryReactor* BrokerService::ListSubscriptions(
    grpc::CallbackServerContext* context, const v1::ListSubscriptionsRequest* request,
    v1::ListSubscriptionsResponse* response) {
  if (auto s = Authorize(context, kAdminScope); !s.ok()) return server::FinishUnary(context, s);
  return server::FinishUnary(
      context, broker_.ListSubscriptions(request->page_size(), request->page_token()), response);
}

grpc::ServerUnaryReactor* BrokerService::UpdateSubscription(
    grpc::CallbackServerContext* context, const v1::UpdateSubscriptionRequest* request,
    v1::Subscription* response) {
  if (auto s = Authorize(context, kAdminScope); !s.ok()) return server::FinishUnary(context, s);
  std::vector<std::string> paths(request->update_mask().paths().begin(),
                                 request->update_mask().paths().end());
  return server::FinishUnary(context, broker_.UpdateSubscription(request->subscription(), paths),
                             response);
}

grpc::ServerUnaryReactor* BrokerService::DeleteSubscription(
    grpc::CallbackServerContext* context, const v1::DeleteSubscriptionRequest* request,
    google::protobuf::Empty*) {
  if (auto s = Authorize(context, kAdminScope); !s.ok()) return server::FinishUnary(context, s);
  return server::FinishUnary(context, broker_.DeleteSubscription(request->name()));
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BrokerService::Subscribe(
    grpc::CallbackServerContext* context) {
  if (auto s = Authorize(context, kSubscribeScope); !s.ok()) {
    return new RefusedStream<grpc::ByteBuffer, grpc::ByteBuffer>(s);
  }
  return new SubscribeReactor(broker_);
}

grpc::ServerUnaryReactor* BrokerService::SeekSubscription(
    grpc::CallbackServerContext* context, const v1::SeekSubscriptionRequest* request,
    v1::Subscription* response) {
  if (auto s = Authorize(context, kAdminScope); !s.ok()) return server::FinishUnary(context, s);
  return server::FinishUnary(context, broker_.Seek(request->name(), request->position()), response);
}

grpc::ServerUnaryReactor* BrokerService::ListDeadLetters(grpc::CallbackServerContext* context,
                                                         const v1::ListDeadLettersRequest* request,
                                                         v1::ListDeadLettersResponse* response) {
  if (auto s = Authorize(context, kSubscribeScope); !s.ok()) return server::FinishUnary(context, s);
  return server::FinishUnary(
      context,
      broker_.ListDeadLetters(request->subscription(), request->page_size(), request->page_token()),
      response);
}

grpc::ServerUnaryReactor* BrokerService::RedriveDeadLetters(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  if (auto s = Authorize(context, kAdminScope); !s.ok()) return server::FinishUnary(context, s);
  auto moved =
      broker_.Redrive(request->subscription(), request->max_events(), request->max_per_second());
  // Never a StatusOr built from an OK status (that aborts the process).
  if (!moved.ok()) return server::FinishUnary(context, moved.status());
  response->set_redriven(*moved);
  return server::FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* BrokerService::GetStreamInfo(grpc::CallbackServerContext* context,
                                                       const v1::GetStreamInfoRequest*,
                                                       v1::StreamInfo* response) {
  if (auto s = Authorize(context, kAdminScope); !s.ok()) return server::FinishUnary(context, s);
  return server::FinishUnary(context, broker_.GetStreamInfo(), response);
}

grpc::ServerWriteReactor<v1::SubscriptionStats>* BrokerService::WatchSubscriptionStats(
    grpc::CallbackServerContext* context, const v1::WatchSubscriptionStatsRequest* request) {
  auto expire = AuthorizeAny(context, {kSubscribeScope, kAdminScope});
  if (!expire.ok()) {
    struct Refused : grpc::ServerWriteReactor<v1::SubscriptionStats> {
      explicit Refused(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Refused(expire.status());
  }
  return WatchStatsReactor::Start(broker_, *request, *expire);
}

}  // namespace pettube::broker
