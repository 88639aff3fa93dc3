#pragma once

#include <memory>
#include <string>

#include "tests/load/bench_peer.h"

namespace pettube::load {

// Our broker, driven over its gRPC API with the generated sync stubs:
// PublishStream with a bounded window of unacked events per producer
// (events that fit in the window go out together in one request, as
// libs/broker_client's Publisher coalesces them), Subscribe with credits,
// acks batched into Settle messages and credits re-granted with Flow.
// Every producer and consumer has its own channel (own TCP connection).
class PetTubePeer : public Peer {
 public:
  // `target`: host:port of the broker's gRPC listener.
  explicit PetTubePeer(std::string target);

  absl::StatusOr<Rate> Publish(const PublishSpec& spec) override;
  absl::Status Preload(const PreloadSpec& spec) override;
  absl::StatusOr<Rate> Consume(const ConsumeSpec& spec) override;
  absl::StatusOr<Percentiles> Latency(const LatencySpec& spec) override;
  absl::StatusOr<int64_t> Backlog(int64_t events, int payload_bytes,
                                  bool stalled_consumer,
                                  const std::function<void()>& measure) override;
  absl::StatusOr<std::unique_ptr<IdleConsumers>> AttachIdle(int consumers, int credits) override;

 private:
  const std::string target_;
};

}  // namespace pettube::load
