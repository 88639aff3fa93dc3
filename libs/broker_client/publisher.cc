#include "libs/broker_client/publisher.h"

#include <grpcpp/support/client_callback.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/broker_client/event_builder.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"

namespace pettube::broker_client {
namespace {

using ::io::cloudevents::v1::CloudEvent;
using ::pettube::broker::v1::PublishStreamRequest;
using ::pettube::broker::v1::PublishStreamResponse;

// Stream-level codes that another attempt would meet again: the events the
// failed stream carried get the status instead of being resent forever
// (e.g. a message over the server's size limit, credentials refused).
// Everything else (UNAVAILABLE, CANCELLED, INTERNAL, a broker that ended
// the stream with OK, ...) is retried.
bool IsPermanentStreamFailure(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

// Out-of-range options would stall the publisher (a window of 0 sends
// nothing) or spin it (no backoff): clamp them to the nearest sane value.
Publisher::Options Sanitized(Publisher::Options options) {
  options.max_outstanding = std::max(options.max_outstanding, 1);
  options.max_batch_events = std::max(options.max_batch_events, 1);
  options.max_buffered_events = std::max<size_t>(options.max_buffered_events, 1);
  options.initial_backoff = std::max(options.initial_backoff, absl::Milliseconds(1));
  options.max_backoff = std::max(options.max_backoff, options.initial_backoff);
  return options;
}

}  // namespace

// One PublishStream attempt. Owned by gRPC from StartCall until OnDone,
// where it deletes itself; the publisher keeps a raw pointer while it is
// the current stream. The bool fields are guarded by the owner's mu_.
class Publisher::Stream final
    : public grpc::ClientBidiReactor<PublishStreamRequest, PublishStreamResponse> {
 public:
  explicit Stream(Publisher* owner) : owner_(owner) {}

  void OnReadDone(bool ok) override { owner_->OnRead(this, ok); }
  void OnWriteDone(bool ok) override { owner_->OnWriteDone(this, ok); }
  void OnDone(const grpc::Status& status) override {
    Publisher* const owner = owner_;
    owner->OnStreamDone(this, status);
    // Deleted before the owner counts it gone: the context holds a channel
    // reference, and dropping the channel's last reference on a gRPC
    // callback thread would make gRPC join that very thread.
    delete this;
    owner->OnStreamDeleted();
  }

  grpc::ClientContext context;
  // The request being written; gRPC reads it until OnWriteDone.
  PublishStreamRequest request;
  // The response being read; filled when OnReadDone(true) runs.
  PublishStreamResponse response;
  bool write_in_flight = false;
  // No write will be started any more.
  bool closed = false;
  // The hold taken before StartCall was released (see MaybeReleaseHoldLocked).
  bool hold_released = false;
  // The broker answered on this stream: its credentials were accepted.
  bool answered = false;

 private:
  Publisher* const owner_;
};

Publisher::Publisher(std::shared_ptr<grpc::Channel> channel)
    : Publisher(std::move(channel), Options()) {}

Publisher::Publisher(std::shared_ptr<grpc::Channel> channel, Options options)
    : options_(Sanitized(std::move(options))),
      stub_(pettube::broker::v1::Broker::NewStub(std::move(channel))),
      backoff_(time::MakeBackoffPolicy(options_.initial_backoff, options_.max_backoff,
                                       time::Jitter::kEqual)) {}

Publisher::~Publisher() { Shutdown(options_.shutdown_timeout); }

void Publisher::PublishAsync(CloudEvent event, PublishCallback done) {
  // The id is fixed here, once: every resend carries the same source + id,
  // which is what lets the broker drop the copies.
  if (event.id().empty()) event.set_id(NewEventId());
  const size_t bytes = event.ByteSizeLong();
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      refused = absl::FailedPreconditionError("publisher: shut down");
    } else if (entries_.size() >= options_.max_buffered_events) {
      refused = absl::ResourceExhaustedError(absl::StrCat(
          "publisher: ", entries_.size(), " events waiting for the broker (max_buffered_events)"));
    } else {
      entries_.emplace(++last_sequence_, Entry{std::move(event), std::move(done), bytes});
      if (stream_ != nullptr) {
        PumpLocked();
      } else if (!backoff_pending_) {
        ConnectOrScheduleLocked();
      }
      return;
    }
  }
  if (done) done(refused);
}

absl::StatusOr<PublishResult> Publisher::PublishAndWait(CloudEvent event, absl::Duration timeout) {
  // Shared with the callback, which may run after a timed-out caller left.
  struct Waiter {
    absl::Mutex mu;
    std::optional<absl::StatusOr<PublishResult>> result ABSL_GUARDED_BY(mu);
  };
  auto waiter = std::make_shared<Waiter>();
  PublishAsync(std::move(event), [waiter](absl::StatusOr<PublishResult> result) {
    absl::MutexLock lock(&waiter->mu);
    waiter->result = std::move(result);
  });
  absl::MutexLock lock(&waiter->mu);
  const auto settled = [&waiter]() {
    waiter->mu.AssertReaderHeld();
    return waiter->result.has_value();
  };
  if (!waiter->mu.AwaitWithTimeout(absl::Condition(&settled), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("publisher: event not settled within ",
                                                    absl::FormatDuration(timeout),
                                                    "; it may still be published"));
  }
  return *std::move(waiter->result);
}

absl::Status Publisher::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const uint64_t target = last_sequence_;
  // Sequences grow with acceptance: everything up to `target` was accepted
  // before this call.
  const auto flushed = [this, target]() {
    mu_.AssertReaderHeld();
    return SettledUpTo(target);
  };
  if (mu_.AwaitWithTimeout(absl::Condition(&flushed), timeout)) return absl::OkStatus();
  const size_t left =
      static_cast<size_t>(std::distance(entries_.begin(), entries_.upper_bound(target)) +
                          std::distance(in_callback_.begin(), in_callback_.upper_bound(target)));
  return absl::DeadlineExceededError(absl::StrCat(
      "publisher: ", left, " events not settled within ", absl::FormatDuration(timeout)));
}

void Publisher::Shutdown(absl::Duration timeout) {
  SettledList cancelled;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      // A concurrent or repeated call: wait for the first one to finish.
      mu_.Await(absl::Condition(&shutdown_done_));
      return;
    }
    shutting_down_ = true;
    const auto drained = [this]() {
      mu_.AssertReaderHeld();
      return entries_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(&drained), timeout);

    closed_ = true;
    if (stream_ != nullptr) CloseStreamLocked(stream_, /*cancel=*/true);
    if (backoff_pending_) backoff_alarm_->Cancel();
    // Both finish promptly once cancelled; after this no gRPC reaction or
    // timer refers to this publisher.
    const auto quiet = [this]() {
      mu_.AssertReaderHeld();
      return live_streams_ == 0 && !backoff_pending_;
    };
    mu_.Await(absl::Condition(&quiet));
    backoff_alarm_.reset();

    if (!entries_.empty()) {
      log::Warning("broker_client.publisher.shutdown_cancelled",
                   {{"unsettled", static_cast<uint64_t>(entries_.size())}});
    }
    while (!entries_.empty()) {
      SettleLocked(entries_.begin(),
                   absl::CancelledError("publisher: shut down before the broker acked the "
                                        "event; it may or may not be stored"),
                   cancelled);
    }
  }
  RunCallbacks(cancelled);
  absl::MutexLock lock(&mu_);
  shutdown_done_ = true;
}

void Publisher::ConnectOrScheduleLocked() {
  if (closed_ || stream_ != nullptr || backoff_pending_) return;
  if (consecutive_failures_ == 0) {
    StartStreamLocked();
    return;
  }
  const absl::Duration delay = backoff_.Delay(consecutive_failures_);
  backoff_alarm_ = std::make_unique<grpc::Alarm>();
  backoff_pending_ = true;
  // A gRPC timer rather than a thread: nothing runs until the deadline.
  backoff_alarm_->Set(absl::ToChronoTime(absl::Now() + delay),
                      [this](bool fired) { OnBackoffDone(fired); });
}

void Publisher::StartStreamLocked() {
  auto* stream = new Stream(this);
  if (options_.configure_context) options_.configure_context(stream->context);
  stream_ = stream;
  ++live_streams_;
  // Everything unsettled goes out again, in order, on the new stream.
  next_to_send_ = 0;
  on_wire_ = 0;
  stub_->async()->PublishStream(&stream->context, stream);
  // Writes start from PublishAsync callers, outside reactions: the hold keeps
  // gRPC from finishing the call (and us from writing to a dead one) until
  // we know no write will be started any more.
  stream->AddHold();
  stream->StartRead(&stream->response);
  // gRPC 1.51 never runs reactions inline from Start* (can_inline=false),
  // so starting operations under mu_ cannot deadlock, and it makes "check
  // state, then start" atomic.
  PumpLocked();
  stream->StartCall();
}

void Publisher::PumpLocked() {
  Stream* const stream = stream_;
  if (stream == nullptr || stream->closed || stream->write_in_flight) return;
  PublishStreamRequest& request = stream->request;
  request.Clear();
  size_t bytes = 0;
  for (auto it = entries_.lower_bound(next_to_send_); it != entries_.end(); ++it) {
    if (request.events_size() >= options_.max_batch_events) break;
    if (on_wire_ >= options_.max_outstanding) break;
    if (request.events_size() > 0 && bytes + it->second.bytes > options_.max_batch_bytes) break;
    auto* item = request.add_events();
    item->set_client_sequence(it->first);
    *item->mutable_event() = it->second.event;
    bytes += it->second.bytes;
    ++on_wire_;
    next_to_send_ = it->first + 1;
  }
  if (request.events_size() == 0) return;
  stream->write_in_flight = true;
  stream->StartWrite(&request);
}

void Publisher::CloseStreamLocked(Stream* stream, bool cancel) {
  if (!stream->closed) {
    stream->closed = true;
    if (cancel) stream->context.TryCancel();
  }
  MaybeReleaseHoldLocked(stream);
}

void Publisher::MaybeReleaseHoldLocked(Stream* stream) {
  // Only once no write is in flight: OnWriteDone may still start the next.
  if (stream->closed && !stream->write_in_flight && !stream->hold_released) {
    stream->hold_released = true;
    stream->RemoveHold();
  }
}

void Publisher::OnWriteDone(Stream* stream, bool ok) {
  absl::MutexLock lock(&mu_);
  stream->write_in_flight = false;
  if (ok) {
    PumpLocked();
  } else {
    // The call is over; the read side ends too and OnDone says why.
    stream->closed = true;
  }
  MaybeReleaseHoldLocked(stream);
}

void Publisher::OnRead(Stream* stream, bool ok) {
  if (!ok) {
    absl::MutexLock lock(&mu_);
    // No cancel: it could replace the broker's status, which decides
    // between retrying and failing the events.
    CloseStreamLocked(stream, /*cancel=*/false);
    return;
  }
  SettledList settled;
  {
    absl::MutexLock lock(&mu_);
    stream->answered = true;
    bool restart = false;
    bool stored = false;
    for (const pettube::broker::v1::PublishAck& ack : stream->response.acks()) {
      // Unknown: already settled (a repeated ack), or never sent on this
      // stream; either way there is nothing to settle.
      if (ack.client_sequence() >= next_to_send_) continue;
      const auto it = entries_.find(ack.client_sequence());
      if (it == entries_.end()) continue;
      const auto code = static_cast<absl::StatusCode>(ack.result().status().code());
      if (code == absl::StatusCode::kUnavailable) {
        // The broker cannot store it now: keep it and resend it, with the
        // rest, on a new stream after backoff.
        restart = true;
        continue;
      }
      --on_wire_;
      if (code == absl::StatusCode::kOk) {
        stored = true;
        SettleLocked(it, PublishResult{ack.result().sequence(), ack.result().duplicate()}, settled);
      } else {
        SettleLocked(it, absl::Status(code, ack.result().status().message()), settled);
      }
    }
    if (stored) consecutive_failures_ = 0;
    if (restart && !stream->closed) {
      log::Warning("broker_client.publisher.restart",
                   {{"reason", "broker answered UNAVAILABLE"},
                    {"unsettled", static_cast<uint64_t>(entries_.size())}});
      CloseStreamLocked(stream, /*cancel=*/true);
    } else {
      PumpLocked();
    }
  }
  // Outside mu_: callbacks may publish. Before the next read: callbacks run
  // one batch at a time, in ack order.
  RunCallbacks(settled);
  stream->StartRead(&stream->response);
}

void Publisher::OnStreamDone(Stream* stream, const grpc::Status& status) {
  SettledList failed;
  {
    absl::MutexLock lock(&mu_);
    if (stream_ == stream) stream_ = nullptr;
    if (!closed_) {
      ++consecutive_failures_;
      const absl::Status cause = status::FromGrpcStatus(status, "PublishStream");
      // UNAUTHENTICATED on a stream the broker had accepted: the token
      // expired during it. The next stream carries a fresh one
      // (configure_context), so its events are resent, not failed.
      const bool expired =
          status.error_code() == grpc::StatusCode::UNAUTHENTICATED && stream->answered;
      if (IsPermanentStreamFailure(status.error_code()) && !expired) {
        // Fail what this stream carried; what never left is tried again.
        while (!entries_.empty() && entries_.begin()->first < next_to_send_) {
          SettleLocked(entries_.begin(), cause, failed);
        }
      }
      log::Warning("broker_client.publisher.stream_ended",
                   {{"code", cause},
                    {"failed", static_cast<uint64_t>(failed.size())},
                    {"unsettled", static_cast<uint64_t>(entries_.size())},
                    {"attempt", consecutive_failures_}});
      next_to_send_ = 0;
      on_wire_ = 0;
      if (!entries_.empty()) ConnectOrScheduleLocked();
    }
  }
  RunCallbacks(failed);
}

void Publisher::OnStreamDeleted() {
  absl::MutexLock lock(&mu_);
  --live_streams_;
}

void Publisher::OnBackoffDone(bool /*fired*/) {
  absl::MutexLock lock(&mu_);
  backoff_pending_ = false;
  // Whether it fired or was cancelled: unless closing, unsettled events
  // need a stream.
  if (!closed_ && stream_ == nullptr && !entries_.empty()) StartStreamLocked();
}

void Publisher::SettleLocked(std::map<uint64_t, Entry>::iterator it,
                             absl::StatusOr<PublishResult> result, SettledList& out) {
  in_callback_.insert(it->first);
  out.push_back({it->first, std::move(it->second.done), std::move(result)});
  entries_.erase(it);
}

void Publisher::RunCallbacks(SettledList& settled) {
  if (settled.empty()) return;
  for (Settled& s : settled) {
    if (s.done) s.done(std::move(s.result));
  }
  absl::MutexLock lock(&mu_);
  for (const Settled& s : settled) in_callback_.erase(s.sequence);
  settled.clear();
}

bool Publisher::SettledUpTo(uint64_t sequence) const {
  // Both sets are ordered: their oldest members decide.
  return (entries_.empty() || entries_.begin()->first > sequence) &&
         (in_callback_.empty() || *in_callback_.begin() > sequence);
}

}  // namespace pettube::broker_client
