#include "libs/broker_client/subscriber.h"

#include <grpcpp/support/client_callback.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"

namespace pettube::broker_client {
namespace {

using ::pettube::broker::v1::SubscribeRequest;
using ::pettube::broker::v1::SubscribeResponse;

// The broker's limit on credits (Attach.max_in_flight, total Flow).
constexpr int kMaxCredits = 10000;
// How long a graceful close waits for the broker to end the half-closed
// stream before cancelling it.
constexpr absl::Duration kHalfCloseTimeout = absl::Seconds(5);

// Stream statuses no retry can fix: the subscriber stops with them.
// Everything else (UNAVAILABLE, a draining broker's OK, expired
// credentials, ...) is retried after backoff.
bool IsFatal(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(d / absl::Nanoseconds(1)));
}

absl::Duration FromDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

bool HasSettlements(const pettube::broker::v1::Settle& settle) {
  return settle.acks_size() > 0 || settle.nacks_size() > 0 || settle.extends_size() > 0 ||
         settle.releases_size() > 0;
}

}  // namespace

// One Subscribe attempt. Owned by gRPC from StartCall until OnDone, where it
// deletes itself; the subscriber keeps a raw pointer while it is current.
// Fields other than context, generation and response are guarded by the
// owner's mu_.
class Subscriber::Stream final
    : public grpc::ClientBidiReactor<SubscribeRequest, SubscribeResponse> {
 public:
  Stream(Subscriber* owner, uint64_t generation) : generation(generation), owner_(owner) {}

  void OnReadDone(bool ok) override { owner_->OnRead(this, ok); }
  void OnWriteDone(bool ok) override { owner_->OnWriteDone(this, ok); }
  void OnDone(const grpc::Status& status) override {
    Subscriber* const owner = owner_;
    owner->OnStreamDone(this, status);
    // Deleted before the owner counts it gone: the context holds a channel
    // reference, and dropping the channel's last reference on a gRPC
    // callback thread would make gRPC join that very thread.
    delete this;
    owner->OnStreamDeleted();
  }

  grpc::ClientContext context;
  const uint64_t generation;
  // The message being written; gRPC reads it until OnWriteDone.
  SubscribeRequest request;
  // The message being read.
  SubscribeResponse response;
  bool write_in_flight = false;
  // No write will be started any more.
  bool closed = false;
  // The hold taken before StartCall was released.
  bool hold_released = false;
  // Shutdown wants a half-close once everything is written.
  bool half_close_wanted = false;

 private:
  Subscriber* const owner_;
};

Subscriber::Subscriber(std::shared_ptr<grpc::Channel> channel, Options options)
    : options_(std::move(options)),
      concurrency_(options_.handler_concurrency > 0 ? options_.handler_concurrency
                                                    : options_.max_in_flight),
      stub_(pettube::broker::v1::Broker::NewStub(std::move(channel))),
      lease_(options_.default_lease),
      backoff_(time::MakeBackoffPolicy(options_.initial_backoff, options_.max_backoff,
                                       time::Jitter::kEqual)) {}

Subscriber::~Subscriber() {
  Shutdown(options_.shutdown_grace);
  {
    absl::MutexLock lock(&mu_);
    threads_exit_ = true;
  }
  // Handlers that outlived the grace are waited for here: they use this
  // object.
  for (std::thread& thread : threads_) thread.join();
}

absl::Status Subscriber::Start(DeliveryHandler handler) {
  if (options_.subscription.empty()) {
    return absl::InvalidArgumentError("options.subscription: must not be empty");
  }
  if (options_.max_in_flight < 1 || options_.max_in_flight > kMaxCredits) {
    return absl::InvalidArgumentError(absl::StrCat("options.max_in_flight: must be 1 to ",
                                                   kMaxCredits, ", got ", options_.max_in_flight));
  }
  if (options_.handler_concurrency < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.handler_concurrency: must not be negative, got ", options_.handler_concurrency));
  }
  if (options_.initial_backoff <= absl::ZeroDuration() ||
      options_.max_backoff < options_.initial_backoff) {
    return absl::InvalidArgumentError(
        "options.initial_backoff: must be positive and at most options.max_backoff");
  }
  if (options_.default_lease < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.default_lease: must be at least 1s, got ",
                     absl::FormatDuration(options_.default_lease)));
  }
  if (!handler) return absl::InvalidArgumentError("handler: must not be empty");

  absl::MutexLock lock(&mu_);
  if (started_ || shutdown_called_) {
    return absl::FailedPreconditionError("subscriber: Start called twice or after Shutdown");
  }
  started_ = true;
  handler_ = std::move(handler);
  threads_.reserve(concurrency_);
  for (int i = 0; i < concurrency_; ++i) threads_.emplace_back([this] { HandlerLoop(); });
  StartStreamLocked();
  return absl::OkStatus();
}

void Subscriber::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  if (shutdown_called_) {
    mu_.Await(absl::Condition(&shutdown_done_));
    return;
  }
  shutdown_called_ = true;
  const absl::Time deadline = absl::Now() + grace;
  const bool stopped_by_itself = stopped_;
  stopping_ = true;
  // Deliveries no thread has started go back to the broker unstarted
  // (released: their attempt is not counted), to other consumers at once.
  for (const Work& work : queue_) {
    ForgetLeaseLocked(work.delivery.lease_id());
    if (IsCurrentLocked(work.generation)) pending_settle_.add_releases(work.delivery.lease_id());
  }
  held_ -= static_cast<int>(queue_.size());
  queue_.clear();
  if (backoff_pending_) backoff_alarm_->Cancel();

  const auto handlers_done = [this]() {
    mu_.AssertReaderHeld();
    return running_ == 0;
  };
  mu_.AwaitWithDeadline(absl::Condition(&handlers_done), deadline);
  PumpLocked();
  const auto settlements_written = [this]() {
    mu_.AssertReaderHeld();
    return stream_ == nullptr || stream_->closed ||
           (!HasSettlements(pending_settle_) && !stream_->write_in_flight);
  };
  mu_.AwaitWithDeadline(absl::Condition(&settlements_written), deadline);

  const auto stream_gone = [this]() {
    mu_.AssertReaderHeld();
    return stream_ == nullptr;
  };
  if (stream_ != nullptr && absl::Now() < deadline) {
    // Half-close rather than cancel: the broker applies everything written
    // before it ends the stream, so the last acks are not lost.
    stream_->half_close_wanted = true;
    PumpLocked();
    mu_.AwaitWithDeadline(absl::Condition(&stream_gone),
                          std::min(deadline, absl::Now() + kHalfCloseTimeout));
  }
  if (stream_ != nullptr) {
    stream_->context.TryCancel();
    if (!stream_->closed) {
      stream_->closed = true;
      MaybeReleaseHoldLocked(stream_);
    }
  }
  const auto quiet = [this]() {
    mu_.AssertReaderHeld();
    return live_streams_ == 0 && !backoff_pending_;
  };
  mu_.Await(absl::Condition(&quiet));
  extend_at_.clear();
  extend_queue_.clear();
  if (extend_alarm_pending_) extend_alarm_->Cancel();
  const auto timers_done = [this]() {
    mu_.AssertReaderHeld();
    return !extend_alarm_pending_;
  };
  mu_.Await(absl::Condition(&timers_done));
  extend_alarm_.reset();
  backoff_alarm_.reset();

  if (running_ > 0) {
    log::Warning("broker_client.subscriber.grace_exceeded",
                 {{"subscription", options_.subscription}, {"running", running_}});
  }
  if (!stopped_by_itself) final_status_ = absl::OkStatus();
  stopped_ = true;
  shutdown_done_ = true;
}

absl::Status Subscriber::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&stopped_));
  return final_status_;
}

std::optional<absl::Status> Subscriber::WaitFor(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&stopped_), timeout)) return std::nullopt;
  return final_status_;
}

void Subscriber::StartStreamLocked() {
  auto* stream = new Stream(this, ++generation_);
  if (options_.configure_context) options_.configure_context(stream->context);
  stream_ = stream;
  ++live_streams_;
  pending_settle_.Clear();
  // Handlers still busy with deliveries of a lost stream count against the
  // limit, so a reconnect never lets more than max_in_flight pile up here.
  // The broker wants at least one credit.
  broker_credits_ = std::max(1, options_.max_in_flight - held_);
  auto* attach = stream->request.mutable_attach();
  attach->set_subscription(options_.subscription);
  attach->set_max_in_flight(broker_credits_);
  attach->set_consumer(options_.consumer);

  stub_->async()->Subscribe(&stream->context, stream);
  // Settlements are written from handler threads and timers, outside
  // reactions: the hold keeps gRPC from finishing the call (and us from
  // writing to a dead one) until no write will be started any more.
  stream->AddHold();
  // gRPC 1.51 never runs reactions inline from Start* (can_inline=false),
  // so starting operations under mu_ cannot deadlock, and it makes "check
  // state, then start" atomic.
  stream->write_in_flight = true;
  stream->StartWrite(&stream->request);
  stream->StartRead(&stream->response);
  stream->StartCall();
}

void Subscriber::ScheduleReconnectLocked() {
  const absl::Duration delay = backoff_.Delay(consecutive_failures_);
  backoff_alarm_ = std::make_unique<grpc::Alarm>();
  backoff_pending_ = true;
  // A gRPC timer rather than a thread: nothing runs until the deadline.
  backoff_alarm_->Set(absl::ToChronoTime(absl::Now() + delay),
                      [this](bool /*fired*/) { OnBackoffDone(); });
}

bool Subscriber::IsCurrentLocked(uint64_t generation) const {
  return stream_ != nullptr && stream_->generation == generation && !stream_->closed;
}

void Subscriber::PumpLocked() {
  Stream* const stream = stream_;
  if (stream == nullptr || stream->closed || stream->write_in_flight) return;
  // Settlements first, then the credits they free: everything that piled
  // up while the previous message was being written goes in one message.
  if (HasSettlements(pending_settle_)) {
    stream->request.Clear();
    stream->request.mutable_settle()->Swap(&pending_settle_);
    stream->write_in_flight = true;
    stream->StartWrite(&stream->request);
    return;
  }
  if (!stopping_) {
    const int wanted = options_.max_in_flight - held_ - broker_credits_;
    if (wanted > 0) {
      stream->request.Clear();
      stream->request.mutable_flow()->set_credits(wanted);
      broker_credits_ += wanted;
      stream->write_in_flight = true;
      stream->StartWrite(&stream->request);
      return;
    }
  }
  if (stream->half_close_wanted) {
    stream->closed = true;
    stream->StartWritesDone();
    MaybeReleaseHoldLocked(stream);
  }
}

void Subscriber::MaybeReleaseHoldLocked(Stream* stream) {
  // Only once no write is in flight: OnWriteDone may still start the next.
  if (stream->closed && !stream->write_in_flight && !stream->hold_released) {
    stream->hold_released = true;
    stream->RemoveHold();
  }
}

void Subscriber::OnWriteDone(Stream* stream, bool ok) {
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

void Subscriber::OnRead(Stream* stream, bool ok) {
  if (!ok) {
    absl::MutexLock lock(&mu_);
    stream->closed = true;
    MaybeReleaseHoldLocked(stream);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    SubscribeResponse& response = stream->response;
    switch (response.response_case()) {
      case SubscribeResponse::kAttached: {
        consecutive_failures_ = 0;
        const auto& deadline = response.attached().subscription().ack_deadline();
        lease_ = (deadline.seconds() > 0 || deadline.nanos() > 0) ? FromDuration(deadline)
                                                                  : options_.default_lease;
        log::Info("broker_client.subscriber.attached", {{"subscription", options_.subscription},
                                                        {"consumer", options_.consumer},
                                                        {"credits", broker_credits_}});
        break;
      }
      case SubscribeResponse::kDeliveries: {
        const absl::Time extend_at = absl::Now() + lease_ * 2 / 3;
        for (Delivery& delivery : *response.mutable_deliveries()->mutable_deliveries()) {
          if (broker_credits_ > 0) --broker_credits_;
          // Stopping: left unsettled, released by the broker on close.
          if (stopping_) continue;
          ++held_;
          extend_at_[delivery.lease_id()] = extend_at;
          extend_queue_.emplace(extend_at, delivery.lease_id());
          queue_.push_back(Work{std::move(delivery), stream->generation});
        }
        ArmExtendAlarmLocked();
        break;
      }
      case SubscribeResponse::kSettleResults:
        // Not asked for (confirm_settlements is off): nothing to do.
        break;
      case SubscribeResponse::kRequestError:
        // The broker refused one of our messages and kept the stream: a bug
        // on one side or the other, worth a line, not a reconnect.
        log::Warning(
            "broker_client.subscriber.request_refused",
            {{"subscription", options_.subscription},
             {"code", absl::Status(static_cast<absl::StatusCode>(response.request_error().code()),
                                   response.request_error().message())}});
        break;
      case SubscribeResponse::RESPONSE_NOT_SET:
        break;
    }
  }
  stream->StartRead(&stream->response);
}

void Subscriber::OnStreamDone(Stream* stream, const grpc::Status& status) {
  std::function<void(const absl::Status&)> notify;
  absl::Status cause;
  {
    absl::MutexLock lock(&mu_);
    if (stream_ == stream) stream_ = nullptr;
    // Everything this stream leased is the broker's again: drop what no
    // handler started; running handlers' results are discarded on return.
    const size_t before = queue_.size();
    queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                                [&](const Work& w) { return w.generation == stream->generation; }),
                 queue_.end());
    held_ -= static_cast<int>(before - queue_.size());
    extend_at_.clear();
    extend_queue_.clear();
    pending_settle_.Clear();
    broker_credits_ = 0;
    if (!stopping_) {
      cause = status::FromGrpcStatus(status, absl::StrCat("Subscribe ", options_.subscription));
      if (IsFatal(status.error_code())) {
        log::Error("broker_client.subscriber.stopped",
                   {{"subscription", options_.subscription}, {"code", cause}});
        StopLocked(cause);
        notify = options_.on_stopped;
      } else {
        ++consecutive_failures_;
        log::Warning("broker_client.subscriber.stream_ended",
                     {{"subscription", options_.subscription},
                      {"code", cause},
                      {"attempt", consecutive_failures_}});
        ScheduleReconnectLocked();
      }
    }
  }
  if (notify) notify(cause);
}

void Subscriber::OnStreamDeleted() {
  absl::MutexLock lock(&mu_);
  --live_streams_;
}

void Subscriber::StopLocked(absl::Status status) {
  stopping_ = true;
  for (const Work& work : queue_) ForgetLeaseLocked(work.delivery.lease_id());
  held_ -= static_cast<int>(queue_.size());
  queue_.clear();
  final_status_ = std::move(status);
  stopped_ = true;
}

void Subscriber::OnBackoffDone() {
  absl::MutexLock lock(&mu_);
  backoff_pending_ = false;
  // Fired or cancelled by Shutdown (then stopping_ is set).
  if (!stopping_ && stream_ == nullptr) StartStreamLocked();
}

void Subscriber::ForgetLeaseLocked(const std::string& lease_id) {
  const auto it = extend_at_.find(lease_id);
  if (it == extend_at_.end()) return;
  extend_queue_.erase({it->second, lease_id});
  extend_at_.erase(it);
}

void Subscriber::ArmExtendAlarmLocked() {
  if (stream_ == nullptr || extend_queue_.empty()) return;
  const absl::Time due = extend_queue_.begin()->first;
  if (extend_alarm_pending_) {
    // Armed for later than now needed (a new stream's leases can be
    // shorter): cancel; OnExtendAlarm re-arms for the earliest.
    if (due < extend_alarm_due_) {
      extend_alarm_->Cancel();
      extend_alarm_due_ = absl::InfinitePast();
    }
    return;
  }
  // Replacing the previous alarm is safe even from its own callback: gRPC
  // keeps it alive until the callback returns.
  extend_alarm_ = std::make_unique<grpc::Alarm>();
  extend_alarm_pending_ = true;
  extend_alarm_due_ = due;
  extend_alarm_->Set(absl::ToChronoTime(due), [this](bool /*fired*/) { OnExtendAlarm(); });
}

void Subscriber::OnExtendAlarm() {
  absl::MutexLock lock(&mu_);
  extend_alarm_pending_ = false;
  if (stream_ == nullptr || stream_->closed) return;
  const absl::Time now = absl::Now();
  const absl::Time next = now + lease_ * 2 / 3;
  while (!extend_queue_.empty() && extend_queue_.begin()->first <= now) {
    const std::string lease_id = extend_queue_.begin()->second;
    extend_queue_.erase(extend_queue_.begin());
    auto* extend = pending_settle_.add_extends();
    extend->set_lease_id(lease_id);
    SetDuration(lease_, extend->mutable_ack_deadline());
    extend_at_[lease_id] = next;
    extend_queue_.emplace(next, lease_id);
  }
  PumpLocked();
  ArmExtendAlarmLocked();
}

void Subscriber::HandlerLoop() {
  const auto ready = [this]() {
    mu_.AssertReaderHeld();
    return threads_exit_ || (!stopping_ && !queue_.empty());
  };
  for (;;) {
    Work work;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&ready));
      if (threads_exit_) return;
      work = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    const absl::Status result = handler_(work.delivery);
    absl::MutexLock lock(&mu_);
    --running_;
    --held_;
    const std::string& lease_id = work.delivery.lease_id();
    ForgetLeaseLocked(lease_id);
    // A lease of a lost stream is void; the broker redelivers the event.
    if (IsCurrentLocked(work.generation)) {
      if (result.ok()) {
        pending_settle_.add_acks(lease_id);
      } else {
        auto* nack = pending_settle_.add_nacks();
        nack->set_lease_id(lease_id);
        nack->set_error(result.message().empty() ? absl::StatusCodeToString(result.code())
                                                 : std::string(result.message()));
      }
    }
    PumpLocked();
  }
}

}  // namespace pettube::broker_client
