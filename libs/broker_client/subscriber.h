#pragma once

// Consuming a broker subscription: deliveries pushed over a Subscribe
// stream, handled on a bounded pool of threads, settled by lease id.
//
//   pettube::broker_client::Subscriber subscriber(channel, {
//       .subscription = "subscriptions/catalog-media-uploaded",
//       .consumer = pod_name});
//   absl::Status started = subscriber.Start(
//       [&](const pettube::broker_client::Delivery& d) { return catalog.Apply(d.event()); });
//   ...
//   subscriber.Shutdown(absl::Seconds(10));  // on SIGTERM

#include <grpcpp/alarm.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/time/backoff.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube::broker_client {

using Delivery = pettube::broker::v1::Delivery;

// Handles one delivery. OK acks it (never redelivered); an error nacks it
// with the status message as the error the broker keeps, and the
// subscription's retry policy decides when it comes again. Must be
// idempotent: a delivery can come more than once (after a nack, a lost
// stream or an expired lease).
using DeliveryHandler = std::function<absl::Status(const Delivery&)>;

// One consumer attached to one subscription. The broker pushes at most
// `max_in_flight` unsettled deliveries (credits); each runs on one of
// `handler_concurrency` threads; settlements and credits go back batched
// (whatever accumulated while the previous message was being written goes
// in the next). A handler running past 2/3 of the lease gets its lease
// extended, again and again, until it returns. A failed stream is
// re-attached after exponential backoff with jitter; deliveries of the lost
// stream still waiting for a thread are dropped (the broker already
// released them) and results of handlers still running for it are
// discarded. NOT_FOUND (no such subscription), INVALID_ARGUMENT,
// PERMISSION_DENIED or UNIMPLEMENTED stop the subscriber: see Wait and
// Options::on_stopped.
//
// Ownership: shares the channel; owns its stream, timers and handler
// threads. The destructor calls Shutdown(options.shutdown_grace) and then
// waits for handlers still running.
//
// Thread-safe: every method may be called from any thread, but not from a
// handler (Shutdown and Wait wait for handlers).
class Subscriber {
 public:
  struct Options {
    // "subscriptions/{subscription_id}".
    std::string subscription;
    // Consumer name for the broker's stats and logs (e.g. the pod name).
    std::string consumer;
    // Credits: deliveries held unsettled at most; 1 to 10000.
    int max_in_flight = 64;
    // Handlers running at once at most; 0 means max_in_flight.
    int handler_concurrency = 0;
    // Lease length asked for in extensions when the broker does not say
    // (its Attached reply carries the subscription's ack_deadline).
    absl::Duration default_lease = absl::Seconds(30);
    // Re-attach delay after the n-th consecutive failure: a random time in
    // [d/2, d] with d = min(max_backoff, initial_backoff * 2^(n-1)).
    absl::Duration initial_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
    // Grace the destructor gives running handlers.
    absl::Duration shutdown_grace = absl::Seconds(30);
    // Called on every new stream's context before the call starts (e.g.
    // credentials). Runs under the subscriber's lock: must be quick.
    std::function<void(grpc::ClientContext&)> configure_context;
    // Called once, on a gRPC thread, when the subscriber stops by itself
    // (not after Shutdown), with the reason. Must not call Shutdown or
    // destroy the subscriber (both wait for this call to return).
    std::function<void(const absl::Status&)> on_stopped;
  };

  Subscriber(std::shared_ptr<grpc::Channel> channel, Options options);
  ~Subscriber();

  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Starts the handler threads and attaches. INVALID_ARGUMENT for bad
  // options (naming the field), FAILED_PRECONDITION when called twice or
  // after Shutdown. Attach failures are not returned here: they are retried
  // or stop the subscriber (see Wait).
  absl::Status Start(DeliveryHandler handler);

  // Stops taking deliveries (those not started are handed back to the
  // broker as releases: redelivered at once, their attempt not counted),
  // waits up to `grace` for running handlers and for their settlements to
  // be written, then closes the stream; the broker releases whatever is
  // still unsettled at once. Idempotent; later calls wait for the first.
  void Shutdown(absl::Duration grace);

  // Blocks until the subscriber has stopped: OK after Shutdown, else why it
  // stopped (e.g. NOT_FOUND: the subscription does not exist).
  absl::Status Wait();
  // As Wait, giving up after `timeout`: nullopt while still running.
  std::optional<absl::Status> WaitFor(absl::Duration timeout);

 private:
  class Stream;

  // A delivery waiting for, or running on, a handler thread.
  struct Work {
    Delivery delivery;
    // Which stream it came on: its settlement is only valid there.
    uint64_t generation = 0;
  };

  void StartStreamLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleReconnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeReleaseHoldLocked(Stream* stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ArmExtendAlarmLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetLeaseLocked(const std::string& lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopLocked(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsCurrentLocked(uint64_t generation) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Reactions of the current Stream and of the two timers.
  void OnRead(Stream* stream, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void OnWriteDone(Stream* stream, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void OnStreamDone(Stream* stream, const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void OnStreamDeleted() ABSL_LOCKS_EXCLUDED(mu_);
  void OnBackoffDone() ABSL_LOCKS_EXCLUDED(mu_);
  void OnExtendAlarm() ABSL_LOCKS_EXCLUDED(mu_);

  // Body of each handler thread.
  void HandlerLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  const int concurrency_;
  const std::unique_ptr<pettube::broker::v1::Broker::Stub> stub_;
  DeliveryHandler handler_;  // set once by Start, before the threads exist
  std::vector<std::thread> threads_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // No new deliveries are taken or credits granted (Shutdown or a fatal
  // stream status).
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Shutdown called; it owns the close sequence.
  bool shutdown_called_ ABSL_GUARDED_BY(mu_) = false;
  // Nothing runs any more but handlers finishing late; Wait returns.
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Shutdown has finished.
  bool shutdown_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  // Handler threads return.
  bool threads_exit_ ABSL_GUARDED_BY(mu_) = false;

  // The live stream, or null while backing off or stopped.
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int live_streams_ ABSL_GUARDED_BY(mu_) = 0;

  // Credits the broker holds for the current stream: granted (Attach,
  // Flow) minus deliveries received.
  int broker_credits_ ABSL_GUARDED_BY(mu_) = 0;
  // Deliveries queued or running, of any stream.
  int held_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);
  // Settlements for the current stream not written yet.
  pettube::broker::v1::Settle pending_settle_ ABSL_GUARDED_BY(mu_);

  // Lease length granted by the broker (Attached), used for extensions.
  absl::Duration lease_ ABSL_GUARDED_BY(mu_);
  // Held leases of the current stream and when each is next extended, also
  // ordered by that time: one timer sleeps until the earliest.
  absl::flat_hash_map<std::string, absl::Time> extend_at_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, std::string>> extend_queue_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> extend_alarm_ ABSL_GUARDED_BY(mu_);
  bool extend_alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time extend_alarm_due_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<grpc::Alarm> backoff_alarm_ ABSL_GUARDED_BY(mu_);
  bool backoff_pending_ ABSL_GUARDED_BY(mu_) = false;
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  // Equal jitter spreads the re-attaches of many consumers after a broker
  // restart.
  time::Backoff backoff_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::broker_client
