#pragma once

// Watching a broker subscription's stats (backlog, in flight, ...) as the
// broker pushes them: what an autoscaler holds instead of polling.
//
//   pettube::broker_client::StatsWatcher watcher(broker_channel, {
//       .subscription = "subscriptions/transcode-jobs",
//       .configure_context = workload.configure_context});
//   absl::Status started = watcher.Start([&](const SubscriptionStats& s) {
//     supervisor.OnQueueDepth(s.backlog(), s.in_flight());
//   });
//   ...
//   watcher.Shutdown();  // on SIGTERM (the destructor does it too)
//
// The broker sends the stats at once on every (re)connect, then after
// each change of backlog or in-flight count, at most once per
// `min_interval`, and nothing while nothing changes. The stream needs a
// token with events.subscribe or events.admin.

#include <grpcpp/alarm.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/time/backoff.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube::broker_client {

using SubscriptionStats = pettube::broker::v1::SubscriptionStats;

// Gets each stats message as it arrives, in order, one at a time, on a
// gRPC thread. Must not block for long and must not call Shutdown.
using StatsCallback = std::function<void(const SubscriptionStats&)>;

// Holds one WatchSubscriptionStats stream and keeps it up: when it ends
// (broker restart or drain, network, expired credentials: UNAUTHENTICATED,
// or NOT_FOUND because the subscription does not exist yet) it reconnects
// after exponential backoff with jitter, calling `configure_context` again
// (so a fresh token goes on every new stream). It stops by itself only on
// INVALID_ARGUMENT, PERMISSION_DENIED or UNIMPLEMENTED, which no retry
// fixes (see Wait and Options::on_stopped).
//
// Ownership: shares the channel; owns its stream and timer. The destructor
// calls Shutdown.
// Thread-safe: every method may be called from any thread, but not from
// the callback.
class StatsWatcher {
 public:
  struct Options {
    // "subscriptions/{subscription_id}".
    std::string subscription;
    // Least time between two messages; at least 10 ms.
    absl::Duration min_interval = absl::Milliseconds(100);
    // Reconnect delay after the n-th consecutive failure: a random time in
    // [d/2, d] with d = min(max_backoff, initial_backoff * 2^(n-1)). A
    // stream that delivered stats resets the count.
    absl::Duration initial_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
    // Called on every new stream's context before the call starts (e.g.
    // credentials). Runs under the watcher's lock: must be quick.
    std::function<void(grpc::ClientContext&)> configure_context;
    // Called when a stream ends and is about to be retried, with why (for
    // logs and health); on a gRPC thread, must not block.
    std::function<void(const absl::Status&)> on_stream_end;
    // Called once, on a gRPC thread, when the watcher stops by itself (not
    // after Shutdown), with the reason. Must not call Shutdown.
    std::function<void(const absl::Status&)> on_stopped;
  };

  StatsWatcher(std::shared_ptr<grpc::Channel> channel, Options options);
  ~StatsWatcher();

  StatsWatcher(const StatsWatcher&) = delete;
  StatsWatcher& operator=(const StatsWatcher&) = delete;

  // Opens the stream. INVALID_ARGUMENT for bad options (naming the field),
  // FAILED_PRECONDITION when called twice or after Shutdown.
  absl::Status Start(StatsCallback callback);

  // Ends the stream and the reconnect timer and waits for them (and for a
  // callback in progress). Idempotent.
  void Shutdown();

  // The last stats received, on any stream; nullopt before the first.
  std::optional<SubscriptionStats> Latest() const;

  // Blocks until the watcher has stopped: OK after Shutdown, else why it
  // stopped by itself. As Wait, giving up after `timeout` (nullopt while
  // still running).
  absl::Status Wait();
  std::optional<absl::Status> WaitFor(absl::Duration timeout);

 private:
  class Stream;

  void StartStreamLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnStats(const SubscriptionStats& stats) ABSL_LOCKS_EXCLUDED(mu_);
  void OnStreamDone(const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void OnStreamDeleted() ABSL_LOCKS_EXCLUDED(mu_);
  void OnBackoffDone(bool fired) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  const std::unique_ptr<pettube::broker::v1::Broker::Stub> stub_;
  StatsCallback callback_;  // set once by Start, before the first stream

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  int live_streams_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<SubscriptionStats> latest_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> backoff_alarm_ ABSL_GUARDED_BY(mu_);
  bool backoff_pending_ ABSL_GUARDED_BY(mu_) = false;
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  // Equal jitter spreads the reconnects of many watchers after a restart.
  time::Backoff backoff_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::broker_client
