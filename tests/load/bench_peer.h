#pragma once

// The measurements broker_bench takes, as one interface that each system
// under test (our broker, NATS JetStream) implements with its own client.
// Every peer gets the same specs: payload size, producer count, window of
// unacked events, credits per consumer.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pettube::load {

// Durable publishing with acks.
struct PublishSpec {
  // Concurrent producers, each on its own connection.
  int producers = 1;
  // Unacked events each producer keeps on the wire at most.
  int window = 256;
  // Bytes of application payload per event.
  int payload_bytes = 512;
  // Events in total (split evenly between producers) ...
  int64_t events = 100000;
  // ... unless this much time passes first: producers then stop sending
  // and wait for the acks of what they sent.
  absl::Duration max_time = absl::Seconds(10);
};

// Filling the log before a consume measurement (not timed).
struct PreloadSpec {
  // Subscriptions (durable consumers) that must receive the events. Our
  // broker needs them before publishing; JetStream consumers are created
  // by Consume and read the stream from its start.
  int subscriptions = 1;
  int payload_bytes = 512;
  int64_t events = 50000;
  int producers = 4;
  int window = 256;
};

// Draining pre-loaded events with explicit acks.
struct ConsumeSpec {
  // Consumers, each on its own subscription (durable consumer) and
  // connection; each must receive every pre-loaded event.
  int consumers = 1;
  // Events each consumer must receive (what was pre-loaded).
  int64_t events = 50000;
  // Deliveries a consumer may hold unacked (our credits, JetStream's
  // MaxAckPending).
  int credits = 1024;
  // Give up after this long.
  absl::Duration timeout = absl::Seconds(120);
};

// Publish-to-delivery latency at a fixed rate.
struct LatencySpec {
  int payload_bytes = 512;
  int rate_per_second = 1000;
  absl::Duration duration = absl::Seconds(10);
  // The first events are left out of the percentiles (connection and cache
  // warm-up).
  int64_t warmup_events = 500;
  int window = 256;
  int credits = 1024;
};

// Events (or deliveries) counted over wall time.
struct Rate {
  int64_t count = 0;
  absl::Duration elapsed;
  // Events refused, lost or failed.
  int64_t errors = 0;
  double PerSecond() const {
    const double s = absl::ToDoubleSeconds(elapsed);
    return s > 0 ? static_cast<double>(count) / s : 0;
  }
};

struct Percentiles {
  int64_t samples = 0;
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  // Events published but never delivered within the timeout.
  int64_t missing = 0;
  // From the first send to the last delivery: longer than the publishing
  // time when the server fell behind the rate.
  absl::Duration span;
};

// Consumers attached and left idle until destroyed.
class IdleConsumers {
 public:
  virtual ~IdleConsumers() = default;
};

// One system under test, reached at one address. Not thread-safe: one
// measurement at a time.
class Peer {
 public:
  virtual ~Peer() = default;

  // Publishes spec.events (or for spec.max_time) and returns the events
  // acked OK per second, from the first send to the last ack.
  virtual absl::StatusOr<Rate> Publish(const PublishSpec& spec) = 0;

  // Creates what must exist before publishing (our subscriptions) and
  // publishes spec.events. Untimed.
  virtual absl::Status Preload(const PreloadSpec& spec) = 0;

  // Attaches spec.consumers consumers at once and returns the deliveries
  // (over all consumers) received and acked per second, from attach to the
  // last ack sent.
  virtual absl::StatusOr<Rate> Consume(const ConsumeSpec& spec) = 0;

  // Attaches one consumer, publishes at a fixed rate with the send time in
  // the payload, and returns the publish-to-delivery latencies.
  virtual absl::StatusOr<Percentiles> Latency(const LatencySpec& spec) = 0;

  // Creates one subscription (durable consumer), publishes `events` events
  // of `payload_bytes` with 4 producers, and returns the backlog the server
  // reports for it. Nobody reads it, or with `stalled_consumer` one
  // consumer is attached with 1 credit and never acks (a handler stuck on
  // an event). Calls `measure` once everything is published, while the
  // consumer (if any) is still attached.
  virtual absl::StatusOr<int64_t> Backlog(int64_t events, int payload_bytes,
                                          bool stalled_consumer,
                                          const std::function<void()>& measure) = 0;

  // Creates `consumers` subscriptions and attaches one consumer to each,
  // with nothing to deliver.
  virtual absl::StatusOr<std::unique_ptr<IdleConsumers>> AttachIdle(int consumers,
                                                                    int credits) = 0;
};

// ------------------------------------------------------------- helpers

// Nanoseconds on the monotonic clock (the bench publishes and consumes in
// one process, so stamps compare directly).
int64_t MonotonicNanos();

// A payload of `bytes` bytes (at least 8) whose first 8 bytes will hold a
// send stamp.
std::string MakePayload(int bytes);
// Writes MonotonicNanos() into the first 8 bytes.
void StampNow(char* payload);
// Reads the stamp; -1 if the payload is too short.
int64_t ReadStamp(const void* payload, size_t size);

// p50/p99/p99.9/max of latencies in nanoseconds (nearest rank).
Percentiles Summarize(std::vector<int64_t> nanos);

}  // namespace pettube::load
