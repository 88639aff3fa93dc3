#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker.h"

namespace pettube::broker {

// One WatchSubscriptionStats call: sends the stats at once, then after
// each change of backlog or in-flight count, at most one message per
// `min_interval`. Idle costs nothing: no timer runs while nothing changes;
// a change that comes within `min_interval` of the last message arms one
// alarm for the end of the interval, and changes meanwhile ride along.
//
// The broker notifies it under its lock (StatsChanged only marks the
// stats stale and arms the alarm); the stats are read when the alarm
// fires, on a gRPC thread, off every lock. Ends with the broker's Close
// status (NOT_FOUND: deleted, OK: draining), or UNAUTHENTICATED at
// `credentials_expire` (the caller's token expired: reconnect with a
// fresh one).
//
// Owned by gRPC: deletes itself once the call is done and no alarm is
// pending. Never blocks.
class WatchStatsReactor : public grpc::ServerWriteReactor<v1::SubscriptionStats>,
                          public StatsObserver {
 public:
  // Default and least `min_interval`.
  static constexpr absl::Duration kDefaultInterval = absl::Milliseconds(100);
  static constexpr absl::Duration kMinInterval = absl::Milliseconds(10);

  // Starts the call (the first message or the refusal). `credentials_expire`
  // InfiniteFuture when credentials are not checked.
  static WatchStatsReactor* Start(Broker& broker, const v1::WatchSubscriptionStatsRequest& request,
                                  absl::Time credentials_expire);

  // StatsObserver (broker lock held).
  void StatsChanged() override;
  void Close(const absl::Status& status) override;

  // grpc::ServerWriteReactor.
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  WatchStatsReactor(Broker& broker, std::string name, absl::Duration interval);

  void Begin(absl::Time credentials_expire);
  void ArmLocked(absl::Time at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnAlarm(bool fired);
  void WriteLocked(v1::SubscriptionStats stats) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unref();

  Broker& broker_;
  const std::string name_;
  const absl::Duration interval_;

  absl::Mutex mu_;
  WatchId watch_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool watching_ ABSL_GUARDED_BY(mu_) = false;
  v1::SubscriptionStats message_ ABSL_GUARDED_BY(mu_);  // the write in flight
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // A change not yet sent.
  bool stale_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // The interval alarm, and the credentials' expiry alarm.
  std::unique_ptr<grpc::Alarm> alarm_ ABSL_GUARDED_BY(mu_);
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Alarm expiry_alarm_;
  bool expiry_armed_ ABSL_GUARDED_BY(mu_) = false;
  // Why the call ends, once known; sent after the write in flight.
  std::optional<absl::Status> ending_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  // One for the call, one per pending alarm; the last one out deletes.
  std::atomic<int> refs_{1};
};

}  // namespace pettube::broker
