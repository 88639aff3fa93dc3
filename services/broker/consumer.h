#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/delivery_wire.h"

namespace pettube::broker {

// A per-item outcome (on streams and in batches) in the API's Status shape.
v1::Status ToProtoStatus(const absl::Status& status);

// The side of a Subscribe stream the broker pushes to. Implemented by the
// gRPC reactor; a fake in tests. Called with the broker's lock held: must
// not block and must not call back into the Broker.
class Consumer {
 public:
  virtual ~Consumer() = default;
  virtual void Deliver(OutboundDelivery delivery) = 0;
  virtual void SettleResults(std::vector<v1::SettleResult> results) = 0;
  // The broker ends the stream (subscription deleted, broker draining).
  virtual void Close(const absl::Status& status) = 0;
};

// Handle of an attached consumer.
using ConsumerId = uint64_t;

// Identifies one delivery's lease inside the broker (the last part of the
// lease id on the wire). Unique for the broker's lifetime.
using LeaseKey = uint64_t;

}  // namespace pettube::broker
