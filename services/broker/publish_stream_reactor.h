#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
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
    Finish(status::ToGrpcStatus(status));
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
    sequences.reserve(request_.events_size());
    std::vector<int64_t> sizes;
    sizes.reserve(request_.events_size());
    int64_t bytes = 0;
    for (v1::PublishStreamEvent& e : *request_.mutable_events()) {
      sequences.push_back(e.client_sequence());
      sizes.push_back(static_cast<int64_t>(e.event().ByteSizeLong()));
      bytes += sizes.back();
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
    // A request is published in parts, each acked once it is durable: the
    // broker writes the first part while it prepares the next, and the
    // client gets acks (and sends more) before the whole request is written,
    // instead of client, gRPC and broker taking turns.
    for (size_t from = 0; from < events.size(); from += kEventsPerPart) {
      const size_t to = std::min(events.size(), from + kEventsPerPart);
      std::vector<CloudEvent> part;
      std::vector<uint64_t> part_sequences(sequences.begin() + from, sequences.begin() + to);
      part.reserve(to - from);
      int64_t part_bytes = 0;
      for (size_t i = from; i < to; ++i) {
        part_bytes += sizes[i];
        part.push_back(std::move(events[i]));
      }
      PublishPart(std::move(part), std::move(part_sequences), part_bytes);
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
  // Events per Publish call (a request of 256 is published in two parts).
  // Measured with one producer and a window of 256 (docs/benchmarks.md,
  // run 17): 128 beat 64 (fewer calls, acks and wake-ups) and 256 (no
  // overlap of one part's write with the next part's preparation).
  static constexpr size_t kEventsPerPart = 128;

  void PublishPart(std::vector<CloudEvent> events, std::vector<uint64_t> sequences, int64_t bytes) {
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
        Finish(status::ToGrpcStatus(absl::UnauthenticatedError(
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

}  // namespace pettube::broker
