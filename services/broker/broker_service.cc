#include "services/broker/broker_service.h"

#include <grpcpp/alarm.h>

#include <atomic>
#include <deque>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "libs/log/log.h"
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
  // Reads nothing until Begin (or Refuse): the caller's access is looked
  // up first.
  explicit PublishStreamReactor(Broker& broker) : broker_(broker) {}

  // Starts reading as `access`; the stream ends with UNAUTHENTICATED at
  // `credentials_expire`, once every event read before is acked.
  void Begin(const Access& access, absl::Time credentials_expire) {
    access_ = access;
    if (credentials_expire != absl::InfiniteFuture()) {
      refs_.fetch_add(1);
      absl::MutexLock lock(&mu_);
      expiry_armed_ = true;
      expiry_alarm_.Set(absl::ToChronoTime(credentials_expire), [this](bool fired) {
        if (fired) {
          absl::MutexLock lock(&mu_);
          expired_ = true;
          MaybeFinishLocked();
        }
        Unref();
      });
    }
    StartRead(&request_);
  }
  void Refuse(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    finished_ = true;
    Finish(ToGrpcStatus(status));
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      if (expired_) {
        // Read after the credentials expired: not published; the client
        // resends them on a new stream with a fresh token.
        for (const v1::PublishStreamEvent& e : request_.events()) {
          v1::PublishAck ack;
          ack.set_client_sequence(e.client_sequence());
          *ack.mutable_result()->mutable_status() = ToProtoStatus(absl::UnavailableError(
              "credentials expired during the stream; resend on a new stream"));
          acks_.push_back(std::move(ack));
        }
        request_.Clear();
        reads_done_ = true;
        MaybeWriteLocked();
        MaybeFinishLocked();
        return;
      }
    }
    std::vector<CloudEvent> events;
    std::vector<uint64_t> sequences;
    events.reserve(request_.events_size());
    int64_t bytes = 0;
    for (v1::PublishStreamEvent& e : *request_.mutable_events()) {
      sequences.push_back(e.client_sequence());
      bytes += static_cast<int64_t>(e.event().ByteSizeLong());
      events.push_back(std::move(*e.mutable_event()));
    }
    request_.Clear();
    bool read_more;
    {
      absl::MutexLock lock(&mu_);
      outstanding_ += static_cast<int64_t>(events.size());
      outstanding_bytes_ += bytes;
      read_more = !OverLimitLocked();
      read_paused_ = !read_more;
    }
    if (!events.empty()) {
      refs_.fetch_add(1);
      broker_.Publish(
          std::move(events),
          [this, bytes, sequences = std::move(sequences)](std::vector<v1::PublishResult> results) {
            {
              absl::MutexLock lock(&mu_);
              for (size_t i = 0; i < results.size(); ++i) {
                v1::PublishAck ack;
                ack.set_client_sequence(sequences[i]);
                *ack.mutable_result() = std::move(results[i]);
                acks_.push_back(std::move(ack));
              }
              outstanding_ -= static_cast<int64_t>(results.size());
              outstanding_bytes_ -= bytes;
              ResumeReadLocked();
              MaybeWriteLocked();
              MaybeFinishLocked();
            }
            Unref();
          },
          access_);
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
    bool expiry_armed;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;  // no more StartRead/StartWrite/Finish
      expiry_armed = expiry_armed_;
    }
    // A cancelled alarm calls back (fired=false) and drops its reference.
    if (expiry_armed) expiry_alarm_.Cancel();
    Unref();
  }

 private:
  // What one stream may hold at once: events read and not yet acked, plus
  // acks not yet written (a client that never reads its acks stops being
  // read), and the bytes of those events. Past either, reading pauses.
  static constexpr int64_t kMaxOutstanding = 8192;
  static constexpr int64_t kMaxOutstandingBytes = 64 << 20;

  bool OverLimitLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ + static_cast<int64_t>(acks_.size()) >= kMaxOutstanding ||
           outstanding_bytes_ >= kMaxOutstandingBytes;
  }
  static constexpr size_t kMaxAcksPerMessage = 1024;

  void ResumeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_paused_ && !finished_ && !done_ && !expired_ &&
        outstanding_ + static_cast<int64_t>(acks_.size()) < kMaxOutstanding / 2 &&
        outstanding_bytes_ < kMaxOutstandingBytes / 2) {
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
    if (broken_ || ((reads_done_ || expired_) && outstanding_ == 0 && acks_.empty())) {
      finished_ = true;
      if (broken_) {
        Finish(grpc::Status(grpc::CANCELLED, "stream broken"));
      } else if (expired_) {
        Finish(ToGrpcStatus(absl::UnauthenticatedError(
            "credentials expired during the stream; reconnect with a fresh token")));
      } else {
        Finish(grpc::Status::OK);
      }
    }
  }

  // Broker callbacks may still arrive after OnDone (a client that hung up
  // with events in the committer): one reference for the call, one per
  // publish in flight; the last one out deletes.
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  Broker& broker_;
  Access access_;  // set by Begin, before the first read
  v1::PublishStreamRequest request_;
  v1::PublishStreamResponse response_;
  grpc::Alarm expiry_alarm_;
  absl::Mutex mu_;
  bool expiry_armed_ ABSL_GUARDED_BY(mu_) = false;
  bool expired_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<v1::PublishAck> acks_ ABSL_GUARDED_BY(mu_);
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t outstanding_bytes_ ABSL_GUARDED_BY(mu_) = 0;
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
  // Reads nothing until Begin (or Refuse): the caller's access is looked
  // up first.
  explicit SubscribeReactor(Broker& broker) : broker_(broker) {}

  // Starts reading as `access`; the stream ends with UNAUTHENTICATED at
  // `credentials_expire` (the client reconnects with a fresh token).
  void Begin(const Access& access, absl::Time credentials_expire) {
    access_ = access;
    absl::MutexLock lock(&mu_);
    if (credentials_expire != absl::InfiniteFuture()) {
      refs_.fetch_add(1);
      expiry_armed_ = true;
      expiry_alarm_.Set(absl::ToChronoTime(credentials_expire), [this](bool fired) {
        if (fired) {
          absl::MutexLock lock(&mu_);
          if (!closing_ && !closed_by_broker_) {
            closing_ = true;
            close_status_ = absl::UnauthenticatedError(
                "credentials expired during the stream; reconnect with a fresh token");
          }
          MaybeWriteLocked();
        }
        Unref();
      });
    }
    reading_ = true;
    StartRead(&request_bytes_);
  }
  void Refuse(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    finished_ = true;
    Finish(ToGrpcStatus(status));
  }

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
    bool read_more;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      // A failed write means the client is gone; OnReadDone(false) follows
      // and detaches.
      if (!ok) broken_ = true;
      MaybeWriteLocked();
      // Reading may have paused on unwritten replies.
      read_more = attached_ && ShouldReadLocked();
      if (read_more) reading_ = true;
    }
    if (read_more) StartRead(&request_bytes_);
  }

  void OnDone() override {
    // After Detach returns the broker never calls this consumer again.
    Detach();
    bool expiry_armed;
    {
      absl::MutexLock lock(&mu_);
      expiry_armed = expiry_armed_;
    }
    // A cancelled alarm calls back (fired=false) and drops its reference.
    if (expiry_armed) expiry_alarm_.Cancel();
    Unref();
  }

 private:
  static constexpr size_t kMaxDeliveriesPerMessage = 256;

  // Requests handled at once on one stream, at most.
  static constexpr int kMaxConcurrentRequests = 4;
  // Unwritten replies past which the stream's requests are not read.
  static constexpr size_t kMaxPendingReplies = 20000;

  bool ShouldReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Replies the client has not read yet (settle results, request errors)
    // are bounded: past the limit its requests wait (backpressure), so a
    // client flooding refused settlements cannot grow the broker's memory.
    return !reading_ && !reads_ended_ && !closing_ && !finished_ &&
           handling_ < kMaxConcurrentRequests &&
           settle_results_.size() + control_.size() < kMaxPendingReplies;
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
    auto id =
        broker_.Attach(a.subscription(), a.max_in_flight(), a.consumer(), this, &settings, access_);
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
    std::vector<std::string> unsent;
    {
      absl::MutexLock lock(&mu_);
      attached = attached_ && !detached_;
      detached_ = true;
      // Never written to the client: no handler can have started them, so
      // they go back without counting an attempt.
      for (const OutboundDelivery& d : deliveries_) unsent.push_back(d.header.lease_id());
      deliveries_.clear();
    }
    if (attached) broker_.Detach(consumer_id_, unsent);
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (broken_) {
      finished_ = true;
      Finish(grpc::Status(grpc::CANCELLED, "stream broken"));
      return;
    }
    // Deliveries released by Detach must not reach the client.
    // Deliveries released by Detach must not reach the client (closing:
    // they stay queued until Detach hands them back unsent).
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
    } else if (!deliveries_.empty() && !closing_) {
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
  bool reading_ ABSL_GUARDED_BY(mu_) = false;      // a read is in flight
  bool reads_ended_ ABSL_GUARDED_BY(mu_) = false;  // the client's side ended
  int handling_ ABSL_GUARDED_BY(mu_) = 0;          // requests being handled
  bool end_pending_ ABSL_GUARDED_BY(mu_) = false;  // ended while requests were being handled
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_by_broker_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool detached_ ABSL_GUARDED_BY(mu_) = false;
  Access access_;  // set by Begin, before the first read
  grpc::Alarm expiry_alarm_;
  bool expiry_armed_ ABSL_GUARDED_BY(mu_) = false;
  // One for the call, one for a pending expiry alarm; the last one out
  // deletes.
  std::atomic<int> refs_{1};

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }
};

}  // namespace

namespace {

// Finishes a unary call with a core result.
template <typename T>
void Reply(grpc::ServerUnaryReactor* reactor, absl::StatusOr<T> result, T* response) {
  if (result.ok()) *response = std::move(*result);
  reactor->Finish(ToGrpcStatus(result.status()));
}

void Reply(grpc::ServerUnaryReactor* reactor, const absl::Status& status) {
  reactor->Finish(ToGrpcStatus(status));
}

// The bearer token of a call ("" if none).
std::string BearerToken(const grpc::CallbackServerContext& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return "";
  return std::string(value);
}

}  // namespace

absl::StatusOr<BrokerService::CallerAccess> BrokerService::Authenticate(
    const grpc::CallbackServerContext* context,
    std::initializer_list<absl::string_view> scopes) const {
  if (authenticator_ == nullptr)
    return CallerAccess{Access::Unchecked(), false, absl::InfiniteFuture()};
  auto caller = authenticator_->Authenticate(*context);
  if (!caller.ok()) return caller.status();
  bool allowed = false;
  for (absl::string_view scope : scopes) allowed |= caller->HasScope(scope);
  if (!allowed) {
    return absl::PermissionDeniedError(absl::StrCat("the access token lacks scope \"",
                                                    absl::StrJoin(scopes, "\" or \""),
                                                    "\" needed for this call"));
  }
  CallerAccess who;
  who.access.identity = caller->identity;
  who.access.admin = caller->HasScope(kAdminScope);
  who.access.checked = true;
  who.workload = caller->workload;
  who.expire = caller->expire_time;
  return who;
}

void BrokerService::WithAccess(const grpc::CallbackServerContext* context,
                               std::initializer_list<absl::string_view> scopes,
                               AccessDone then) const {
  absl::StatusOr<CallerAccess> who = Authenticate(context, scopes);
  // Admins too: the publish policy applies to them as well.
  if (!who.ok() || resolver_ == nullptr || !who->workload) {
    then(std::move(who));
    return;
  }
  // The access policy names workloads by client id: look it up (once per
  // identity). Without it the caller only loses what the policy grants by
  // client id (fail closed), so a lookup failure is logged, not fatal.
  // Copied first: the lambda below takes `who`, and argument order is
  // unspecified.
  const std::string identity = who->access.identity;
  resolver_->Resolve(identity, BearerToken(*context),
                     [who = *std::move(who),
                      then = std::move(then)](absl::StatusOr<std::string> client_id) mutable {
                       if (client_id.ok()) {
                         who.access.client_id = *std::move(client_id);
                       } else {
                         log::Warning(
                             "broker.client_id_unknown",
                             {{"identity", who.access.identity}, {"code", client_id.status()}});
                       }
                       then(std::move(who));
                     });
}

grpc::ServerUnaryReactor* BrokerService::Publish(grpc::CallbackServerContext* context,
                                                 const v1::PublishRequest* request,
                                                 v1::PublishResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (request->events_size() == 0) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError("events: must not be empty")));
    return reactor;
  }
  if (request->events_size() > kMaxBatch) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "events: at most ", kMaxBatch, " per request, got ", request->events_size()))));
    return reactor;
  }
  WithAccess(context, {kPublishScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               std::vector<CloudEvent> events(request->events().begin(), request->events().end());
               broker_.Publish(
                   std::move(events),
                   [reactor, response](std::vector<v1::PublishResult> results) {
                     for (auto& r : results) *response->add_results() = std::move(r);
                     reactor->Finish(grpc::Status::OK);
                   },
                   who->access);
             });
  return reactor;
}

grpc::ServerBidiReactor<v1::PublishStreamRequest, v1::PublishStreamResponse>*
BrokerService::PublishStream(grpc::CallbackServerContext* context) {
  auto* reactor = new PublishStreamReactor(broker_);
  WithAccess(context, {kPublishScope}, [reactor](absl::StatusOr<CallerAccess> who) {
    if (!who.ok()) return reactor->Refuse(who.status());
    reactor->Begin(who->access, who->expire);
  });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::CreateSubscription(
    grpc::CallbackServerContext* context, const v1::CreateSubscriptionRequest* request,
    v1::Subscription* response) {
  auto* reactor = context->DefaultReactor();
  // events.subscribe suffices: a service creates the subscription it
  // consumes, and owns it.
  auto who = Authenticate(context, {kSubscribeScope, kAdminScope});
  if (!who.ok()) {
    Reply(reactor, who.status());
  } else {
    Reply(reactor,
          broker_.CreateSubscription(request->subscription_id(), request->subscription(),
                                     who->access),
          response);
  }
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::GetSubscription(grpc::CallbackServerContext* context,
                                                         const v1::GetSubscriptionRequest* request,
                                                         v1::Subscription* response) {
  auto* reactor = context->DefaultReactor();
  auto who = Authenticate(context, {kSubscribeScope, kAdminScope});
  if (!who.ok()) {
    Reply(reactor, who.status());
  } else {
    Reply(reactor, broker_.GetSubscription(request->name()), response);
  }
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::ListSubscriptions(
    grpc::CallbackServerContext* context, const v1::ListSubscriptionsRequest* request,
    v1::ListSubscriptionsResponse* response) {
  auto* reactor = context->DefaultReactor();
  auto who = Authenticate(context, {kAdminScope});
  if (!who.ok()) {
    Reply(reactor, who.status());
  } else {
    Reply(reactor, broker_.ListSubscriptions(request->page_size(), request->page_token()),
          response);
  }
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::UpdateSubscription(
    grpc::CallbackServerContext* context, const v1::UpdateSubscriptionRequest* request,
    v1::Subscription* response) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               std::vector<std::string> paths(request->update_mask().paths().begin(),
                                              request->update_mask().paths().end());
               Reply(reactor,
                     broker_.UpdateSubscription(request->subscription(), paths, who->access),
                     response);
             });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::DeleteSubscription(
    grpc::CallbackServerContext* context, const v1::DeleteSubscriptionRequest* request,
    google::protobuf::Empty*) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               Reply(reactor, broker_.DeleteSubscription(request->name(), who->access));
             });
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BrokerService::Subscribe(
    grpc::CallbackServerContext* context) {
  auto* reactor = new SubscribeReactor(broker_);
  WithAccess(context, {kSubscribeScope, kAdminScope}, [reactor](absl::StatusOr<CallerAccess> who) {
    if (!who.ok()) return reactor->Refuse(who.status());
    reactor->Begin(who->access, who->expire);
  });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::SeekSubscription(
    grpc::CallbackServerContext* context, const v1::SeekSubscriptionRequest* request,
    v1::Subscription* response) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               Reply(reactor, broker_.Seek(request->name(), request->position(), who->access),
                     response);
             });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::ListDeadLetters(grpc::CallbackServerContext* context,
                                                         const v1::ListDeadLettersRequest* request,
                                                         v1::ListDeadLettersResponse* response) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               Reply(reactor,
                     broker_.ListDeadLetters(request->subscription(), request->page_size(),
                                             request->page_token(), who->access),
                     response);
             });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::RedriveDeadLetters(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               auto moved = broker_.Redrive(request->subscription(), request->max_events(),
                                            request->max_per_second(), who->access);
               // Never a StatusOr built from an OK status (that aborts).
               if (!moved.ok()) return Reply(reactor, moved.status());
               response->set_redriven(*moved);
               Reply(reactor, absl::OkStatus());
             });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::GetStreamInfo(grpc::CallbackServerContext* context,
                                                       const v1::GetStreamInfoRequest*,
                                                       v1::StreamInfo* response) {
  auto* reactor = context->DefaultReactor();
  auto who = Authenticate(context, {kAdminScope});
  if (!who.ok()) {
    Reply(reactor, who.status());
  } else {
    Reply(reactor, broker_.GetStreamInfo(), response);
  }
  return reactor;
}

grpc::ServerWriteReactor<v1::SubscriptionStats>* BrokerService::WatchSubscriptionStats(
    grpc::CallbackServerContext* context, const v1::WatchSubscriptionStatsRequest* request) {
  // Autoscalers watch queues they do not own: no owner check.
  auto who = Authenticate(context, {kSubscribeScope, kAdminScope});
  if (!who.ok()) {
    struct Refused : grpc::ServerWriteReactor<v1::SubscriptionStats> {
      explicit Refused(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Refused(who.status());
  }
  return WatchStatsReactor::Start(broker_, *request, who->expire);
}

}  // namespace pettube::broker
