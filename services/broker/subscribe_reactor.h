#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <atomic>
#include <deque>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker.h"

namespace pettube::broker {

// A message as the bytes gRPC sends.
grpc::ByteBuffer ToByteBuffer(std::string bytes);

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
    Finish(status::ToGrpcStatus(status));
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
        Finish(status::ToGrpcStatus(close_status_));
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

}  // namespace pettube::broker
