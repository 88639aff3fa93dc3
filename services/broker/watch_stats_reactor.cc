#include "services/broker/watch_stats_reactor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/status/grpc_status.h"
#include "libs/time/proto_time.h"

namespace pettube::broker {

WatchStatsReactor* WatchStatsReactor::Start(Broker& broker,
                                            const v1::WatchSubscriptionStatsRequest& request,
                                            absl::Time credentials_expire) {
  absl::Duration interval = kDefaultInterval;
  absl::Status invalid;
  if (request.has_min_interval()) {
    const absl::Duration asked = time::FromProto(request.min_interval());
    if (asked < absl::ZeroDuration() || (asked > absl::ZeroDuration() && asked < kMinInterval)) {
      invalid = absl::InvalidArgumentError(absl::StrCat("min_interval: must be at least ",
                                                        absl::FormatDuration(kMinInterval),
                                                        ", got ", absl::FormatDuration(asked)));
    } else if (asked > absl::ZeroDuration()) {
      interval = asked;
    }
  }
  auto* reactor = new WatchStatsReactor(broker, request.name(), interval);
  if (!invalid.ok()) {
    absl::MutexLock lock(&reactor->mu_);
    reactor->FinishLocked(invalid);
    return reactor;
  }
  reactor->Begin(credentials_expire);
  return reactor;
}

WatchStatsReactor::WatchStatsReactor(Broker& broker, std::string name, absl::Duration interval)
    : broker_(broker), name_(std::move(name)), interval_(interval) {}

void WatchStatsReactor::Begin(absl::Time credentials_expire) {
  {
    // Until the first message is written, changes only mark the stats
    // stale (as during any write); OnWriteDone then sends them.
    absl::MutexLock lock(&mu_);
    writing_ = true;
  }
  v1::SubscriptionStats initial;
  // Not under our lock: the broker calls StatsChanged (which takes it)
  // under its own.
  auto id = broker_.WatchStats(name_, this, &initial);
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!id.ok()) {
    FinishLocked(id.status());
    return;
  }
  watch_id_ = *id;
  watching_ = !ending_.has_value();  // Close may already have come
  if (credentials_expire != absl::InfiniteFuture()) {
    refs_.fetch_add(1);
    expiry_armed_ = true;
    expiry_alarm_.Set(absl::ToChronoTime(credentials_expire), [this](bool fired) {
      if (fired) {
        absl::MutexLock lock(&mu_);
        if (!ending_.has_value()) {
          ending_ = absl::UnauthenticatedError(
              "credentials expired during the stream; reconnect with a fresh token");
        }
        if (!writing_) FinishLocked(*ending_);
      }
      Unref();
    });
  }
  // `stale_` stays as StatsChanged left it: a change after the snapshot
  // is sent once this first write is done.
  WriteLocked(std::move(initial));
}

void WatchStatsReactor::StatsChanged() {
  absl::MutexLock lock(&mu_);
  if (stale_ || finished_ || ending_.has_value()) return;
  stale_ = true;
  // While a write is in flight OnWriteDone arms the alarm.
  if (!writing_) ArmLocked(last_write_ + interval_);
}

void WatchStatsReactor::Close(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  watching_ = false;  // the broker forgot this watch already
  if (!ending_.has_value()) ending_ = status;
  if (!writing_) FinishLocked(*ending_);
}

void WatchStatsReactor::ArmLocked(absl::Time at) {
  if (alarm_pending_ || finished_) return;
  alarm_pending_ = true;
  refs_.fetch_add(1);
  // Also when `at` has passed: the alarm moves the stats read off the
  // broker's lock, onto a gRPC thread.
  alarm_ = std::make_unique<grpc::Alarm>();
  alarm_->Set(absl::ToChronoTime(std::max(at, absl::Now())),
              [this](bool fired) { OnAlarm(fired); });
}

void WatchStatsReactor::OnAlarm(bool fired) {
  bool read;
  {
    absl::MutexLock lock(&mu_);
    alarm_pending_ = false;
    read = fired && !finished_ && !ending_.has_value();
    // What is read next covers every change so far; a change during the
    // read marks the stats stale again.
    if (read) stale_ = false;
  }
  if (read) {
    // Read outside our lock: the broker takes its own, and calls
    // StatsChanged (which takes ours) under it.
    auto stats = broker_.GetStats(name_);
    absl::MutexLock lock(&mu_);
    if (!finished_ && !ending_.has_value()) {
      if (!stats.ok()) {
        ending_ = stats.status();
        if (!writing_) FinishLocked(*ending_);
      } else if (writing_ || absl::Now() < last_write_ + interval_) {
        // Another alarm's message went first: send after it, within the
        // interval rule.
        stale_ = true;
        if (!writing_) ArmLocked(last_write_ + interval_);
      } else {
        WriteLocked(std::move(*stats));
      }
    }
  }
  Unref();
}

void WatchStatsReactor::WriteLocked(v1::SubscriptionStats stats) {
  message_ = std::move(stats);
  writing_ = true;
  last_write_ = absl::Now();
  StartWrite(&message_);
}

void WatchStatsReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok) {
    // The client is gone.
    FinishLocked(absl::CancelledError("stream broken"));
    return;
  }
  if (ending_.has_value()) {
    FinishLocked(*ending_);
    return;
  }
  if (stale_) ArmLocked(last_write_ + interval_);
}

void WatchStatsReactor::OnCancel() {
  absl::MutexLock lock(&mu_);
  if (!ending_.has_value()) ending_ = absl::CancelledError("cancelled by the client");
  if (!writing_) FinishLocked(*ending_);
}

void WatchStatsReactor::FinishLocked(const absl::Status& status) {
  if (finished_) return;
  finished_ = true;
  Finish(status::ToGrpcStatus(status));
}

void WatchStatsReactor::OnDone() {
  bool unwatch, expiry_armed;
  WatchId id;
  grpc::Alarm* pending = nullptr;
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
    unwatch = watching_;
    watching_ = false;
    id = watch_id_;
    expiry_armed = expiry_armed_;
    // Finished: nothing arms or replaces the alarm any more.
    if (alarm_pending_) pending = alarm_.get();
  }
  // Outside our lock: UnwatchStats takes the broker's, under which the
  // broker calls StatsChanged (which takes ours); a cancelled alarm may
  // call back (fired=false) at once, and drops its reference.
  if (unwatch) broker_.UnwatchStats(id);
  if (pending != nullptr) pending->Cancel();
  if (expiry_armed) expiry_alarm_.Cancel();
  Unref();
}

void WatchStatsReactor::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

}  // namespace pettube::broker
