#include "libs/broker_client/stats_watcher.h"

#include <grpcpp/support/client_callback.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/status/grpc_status.h"

namespace pettube::broker_client {
namespace {

bool IsFatal(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

}  // namespace

// One WatchSubscriptionStats attempt. Owned by gRPC from StartCall until
// OnDone, where it deletes itself.
class StatsWatcher::Stream final
    : public grpc::ClientReadReactor<pettube::broker::v1::SubscriptionStats> {
 public:
  explicit Stream(StatsWatcher* owner) : owner_(owner) {}

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    owner_->OnStats(response);
    StartRead(&response);
  }
  void OnDone(const grpc::Status& status) override {
    StatsWatcher* const owner = owner_;
    owner->OnStreamDone(status);
    // Deleted before the owner counts it gone: the context holds a channel
    // reference, and dropping the channel's last one on a gRPC callback
    // thread would make gRPC join that very thread.
    delete this;
    owner->OnStreamDeleted();
  }

  grpc::ClientContext context;
  pettube::broker::v1::WatchSubscriptionStatsRequest request;
  pettube::broker::v1::SubscriptionStats response;

 private:
  StatsWatcher* const owner_;
};

StatsWatcher::StatsWatcher(std::shared_ptr<grpc::Channel> channel, Options options)
    : options_(std::move(options)),
      stub_(pettube::broker::v1::Broker::NewStub(channel)),
      backoff_(time::MakeBackoffPolicy(options_.initial_backoff, options_.max_backoff,
                                       time::Jitter::kEqual)) {}

StatsWatcher::~StatsWatcher() { Shutdown(); }

absl::Status StatsWatcher::Start(StatsCallback callback) {
  if (options_.subscription.rfind("subscriptions/", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subscription: must be \"subscriptions/{id}\", got \"", options_.subscription, "\""));
  }
  if (options_.min_interval < absl::Milliseconds(10)) {
    return absl::InvalidArgumentError(absl::StrCat("min_interval: must be at least 10ms, got ",
                                                   absl::FormatDuration(options_.min_interval)));
  }
  if (options_.initial_backoff <= absl::ZeroDuration() ||
      options_.max_backoff < options_.initial_backoff) {
    return absl::InvalidArgumentError("initial_backoff, max_backoff: need 0 < initial <= max");
  }
  if (!callback) return absl::InvalidArgumentError("callback: must be set");
  absl::MutexLock lock(&mu_);
  if (started_ || shutdown_) {
    return absl::FailedPreconditionError("StatsWatcher: Start called twice or after Shutdown");
  }
  started_ = true;
  callback_ = std::move(callback);
  StartStreamLocked();
  return absl::OkStatus();
}

void StatsWatcher::StartStreamLocked() {
  auto* stream = new Stream(this);
  if (options_.configure_context) options_.configure_context(stream->context);
  stream->request.set_name(options_.subscription);
  const int64_t nanos = absl::ToInt64Nanoseconds(options_.min_interval);
  stream->request.mutable_min_interval()->set_seconds(nanos / 1000000000);
  stream->request.mutable_min_interval()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  stream_ = stream;
  ++live_streams_;
  stub_->async()->WatchSubscriptionStats(&stream->context, &stream->request, stream);
  // gRPC 1.51 never runs reactions inline from Start*: safe under mu_.
  stream->StartRead(&stream->response);
  stream->StartCall();
}

void StatsWatcher::OnStats(const SubscriptionStats& stats) {
  {
    absl::MutexLock lock(&mu_);
    consecutive_failures_ = 0;
    latest_ = stats;
  }
  // Reads on one stream are sequential and streams do not overlap (the
  // next starts after this one is done): calls never run concurrently.
  callback_(stats);
}

void StatsWatcher::OnStreamDone(const grpc::Status& grpc_status) {
  const absl::Status status = status::FromGrpcStatus(grpc_status);
  std::function<void(const absl::Status&)> notify;
  {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
    if (shutdown_ || stopped_) return;
    if (IsFatal(grpc_status.error_code())) {
      stopped_ = true;
      final_status_ = status;
      notify = options_.on_stopped;
    } else {
      notify = options_.on_stream_end;
      ++consecutive_failures_;
      const absl::Duration delay = backoff_.Delay(consecutive_failures_);
      backoff_alarm_ = std::make_unique<grpc::Alarm>();
      backoff_pending_ = true;
      backoff_alarm_->Set(absl::ToChronoTime(absl::Now() + delay),
                          [this](bool fired) { OnBackoffDone(fired); });
    }
  }
  if (notify) notify(status);
}

void StatsWatcher::OnStreamDeleted() {
  absl::MutexLock lock(&mu_);
  --live_streams_;
}

void StatsWatcher::OnBackoffDone(bool fired) {
  absl::MutexLock lock(&mu_);
  backoff_pending_ = false;
  if (!fired || shutdown_ || stopped_) return;
  StartStreamLocked();
}

void StatsWatcher::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (!shutdown_) {
    shutdown_ = true;
    if (stream_ != nullptr) stream_->context.TryCancel();
    if (backoff_pending_) backoff_alarm_->Cancel();
  }
  const auto quiet = [this]() {
    mu_.AssertReaderHeld();
    return live_streams_ == 0 && !backoff_pending_;
  };
  mu_.Await(absl::Condition(&quiet));
  backoff_alarm_.reset();
  if (!stopped_) final_status_ = absl::OkStatus();
  stopped_ = true;
}

std::optional<SubscriptionStats> StatsWatcher::Latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

absl::Status StatsWatcher::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&stopped_));
  return final_status_;
}

std::optional<absl::Status> StatsWatcher::WaitFor(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&stopped_), timeout)) return std::nullopt;
  return final_status_;
}

}  // namespace pettube::broker_client
