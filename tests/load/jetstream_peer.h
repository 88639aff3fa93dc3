#pragma once

#include <memory>
#include <string>

#include "tests/load/bench_peer.h"

namespace pettube::load {

// NATS JetStream (nats-server 2.9 from Debian) driven with libnats 3.4:
// one file-backed stream "BENCH" on "bench.>", async publishing
// (js_PublishAsync with PublishAsync.MaxPending = the window, then
// js_PublishAsyncComplete), durable push consumers with AckExplicit and
// MaxAckPending = the credits, acked one message at a time with
// natsMsg_Ack (JetStream has no batched explicit ack). Every producer and
// consumer has its own connection. Latency runs set SendAsap on both
// connections; throughput runs keep libnats' default write batching.
class JetStreamPeer : public Peer {
 public:
  // `url`: nats://host:port.
  explicit JetStreamPeer(std::string url);

  absl::StatusOr<Rate> Publish(const PublishSpec& spec) override;
  absl::Status Preload(const PreloadSpec& spec) override;
  absl::StatusOr<Rate> Consume(const ConsumeSpec& spec) override;
  absl::StatusOr<Percentiles> Latency(const LatencySpec& spec) override;
  absl::StatusOr<int64_t> Backlog(int64_t events, int payload_bytes,
                                  bool stalled_consumer,
                                  const std::function<void()>& measure) override;
  absl::StatusOr<std::unique_ptr<IdleConsumers>> AttachIdle(int consumers, int credits) override;

 private:
  const std::string url_;
};

}  // namespace pettube::load
