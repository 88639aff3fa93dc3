#pragma once

// Publishing CloudEvents to the PetTube broker over one PublishStream.
//
//   pettube::broker_client::Publisher publisher(channel);
//   publisher.PublishAsync(std::move(event),
//                          [](absl::StatusOr<pettube::broker_client::PublishResult> r) {...});
//   absl::StatusOr<PublishResult> r = publisher.PublishAndWait(event, absl::Seconds(5));
//   absl::Status drained = publisher.Flush(absl::Seconds(5));

#include <grpcpp/alarm.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/time/backoff.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube::broker_client {

// How the broker settled one published event.
struct PublishResult {
  // Broker sequence number of the stored event (of the original when
  // `duplicate`).
  uint64_t sequence = 0;
  // True when the broker already had this source + id, e.g. because an
  // earlier attempt was stored but its ack was lost with the stream. Counts
  // as success: the event is in the log exactly once.
  bool duplicate = false;
};

// Called once per event with its result: OK, or the broker's per-event
// refusal (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...), or CANCELLED when the
// publisher shut down first. Runs on a gRPC or caller thread; must not block
// (in particular must not call PublishAndWait, Flush or Shutdown).
using PublishCallback = std::function<void(absl::StatusOr<PublishResult>)>;

// Publishes events on one long-lived PublishStream, keeping at most
// `max_outstanding` events unacked on the wire; events handed in while a
// write is in flight are coalesced into the next request. When the stream
// fails (or the broker answers an event with UNAVAILABLE) every unsettled
// event is resent on a new stream after exponential backoff with jitter.
// Event ids are fixed when an event is accepted, so the broker's source + id
// dedup turns a resend of an already stored event into a `duplicate` result,
// never a second copy.
//
// Ownership: shares the channel; owns its stream, timers and the accepted
// events until they are settled. The destructor calls Shutdown.
//
// Thread-safe: every method may be called from any thread concurrently.
class Publisher {
 public:
  // Values out of range are clamped (window, batch and buffer at least 1,
  // backoff at least 1 ms).
  struct Options {
    // Unacked events on the wire at most; more wait locally.
    int max_outstanding = 1024;
    // Limits of one PublishStreamRequest. An event larger than
    // max_batch_bytes travels alone.
    int max_batch_events = 256;
    size_t max_batch_bytes = size_t{1} << 20;
    // Events accepted and not yet settled (on the wire or waiting) at most;
    // beyond it PublishAsync refuses with RESOURCE_EXHAUSTED instead of
    // growing memory without bound while the broker is away.
    size_t max_buffered_events = 100000;
    // Reconnect delay after the n-th consecutive failure: a random time in
    // [d/2, d] with d = min(max_backoff, initial_backoff * 2^(n-1)).
    absl::Duration initial_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
    // How long the destructor waits for in-flight events to settle.
    absl::Duration shutdown_timeout = absl::Seconds(10);
    // Called on every new stream's context before the call starts, e.g. to
    // attach credentials as metadata. Runs under the publisher's lock: must
    // be quick and must not call the publisher.
    std::function<void(grpc::ClientContext&)> configure_context;
  };

  explicit Publisher(std::shared_ptr<grpc::Channel> channel);
  Publisher(std::shared_ptr<grpc::Channel> channel, Options options);
  ~Publisher();

  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Accepts `event` and calls `done` once it is settled. An empty `id` is
  // filled with a fresh one here, before the first attempt. Never blocks.
  // `done` gets FAILED_PRECONDITION after Shutdown started and
  // RESOURCE_EXHAUSTED when max_buffered_events are waiting (both at once,
  // on the caller's thread).
  void PublishAsync(io::cloudevents::v1::CloudEvent event, PublishCallback done);

  // PublishAsync and wait for the result. DEADLINE_EXCEEDED after `timeout`:
  // the event stays accepted and may still be stored.
  absl::StatusOr<PublishResult> PublishAndWait(io::cloudevents::v1::CloudEvent event,
                                               absl::Duration timeout);

  // Waits until every event accepted before the call is settled (its
  // callback has been called). DEADLINE_EXCEEDED, naming how many are left,
  // after `timeout`.
  absl::Status Flush(absl::Duration timeout);

  // Refuses new events, waits up to `timeout` for accepted ones to settle,
  // then closes the stream; events still unsettled get CANCELLED (the broker
  // may or may not have stored them). Returns when no callback or gRPC
  // operation of this publisher is running any more. Idempotent.
  void Shutdown(absl::Duration timeout);

 private:
  class Stream;

  // An accepted event until it is settled.
  struct Entry {
    io::cloudevents::v1::CloudEvent event;
    PublishCallback done;
    size_t bytes = 0;
  };
  // A callback to run once mu_ is released.
  struct Settled {
    uint64_t sequence;
    PublishCallback done;
    absl::StatusOr<PublishResult> result;
  };
  using SettledList = std::vector<Settled>;

  void StartStreamLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ConnectOrScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseStreamLocked(Stream* stream, bool cancel) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeReleaseHoldLocked(Stream* stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Reactions of the current Stream and of the backoff alarm.
  void OnRead(Stream* stream, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void OnWriteDone(Stream* stream, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void OnStreamDone(Stream* stream, const grpc::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  void OnStreamDeleted() ABSL_LOCKS_EXCLUDED(mu_);
  void OnBackoffDone(bool fired) ABSL_LOCKS_EXCLUDED(mu_);

  // Removes the entry, queueing its callback on `out`.
  void SettleLocked(std::map<uint64_t, Entry>::iterator it, absl::StatusOr<PublishResult> result,
                    SettledList& out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs the callbacks (without mu_), then lets Flush see them done.
  void RunCallbacks(SettledList& settled) ABSL_LOCKS_EXCLUDED(mu_);
  bool SettledUpTo(uint64_t sequence) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::unique_ptr<pettube::broker::v1::Broker::Stub> stub_;

  absl::Mutex mu_;
  // Accepted, unsettled events by client sequence; ordered, so a resend
  // keeps publish order.
  std::map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t last_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Settled events whose callbacks are running: Flush waits for them too.
  std::set<uint64_t> in_callback_ ABSL_GUARDED_BY(mu_);
  // Entries below this sequence were written on the current stream.
  uint64_t next_to_send_ ABSL_GUARDED_BY(mu_) = 0;
  // Events written on the current stream and not acked yet (the window).
  int on_wire_ ABSL_GUARDED_BY(mu_) = 0;
  // The live stream, or null while disconnected or backing off.
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Streams not yet deleted; Shutdown waits for 0.
  int live_streams_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<grpc::Alarm> backoff_alarm_ ABSL_GUARDED_BY(mu_);
  bool backoff_pending_ ABSL_GUARDED_BY(mu_) = false;
  // Failed streams in a row; reset by the first ack on a stream.
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  // Shutdown started: new events are refused.
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // Shutdown is closing: no new stream or timer is started.
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Shutdown has finished, callbacks included.
  bool shutdown_done_ ABSL_GUARDED_BY(mu_) = false;
  // Equal jitter spreads the reconnects of many publishers after a broker
  // restart.
  time::Backoff backoff_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::broker_client
