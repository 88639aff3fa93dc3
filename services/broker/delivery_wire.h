#pragma once

#include <memory>
#include <string>

#include "absl/types/span.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker_store.h"

namespace pettube::broker {

// One delivery on its way to a consumer: everything but the event in
// `header`, and the event as stored, shared with the log's other readers.
struct OutboundDelivery {
  v1::Delivery header;  // lease, sequence, attempt, times; `event` unset
  std::shared_ptr<const StoredEvent> event;
};

// Appends one serialized v1::SubscribeResponse carrying `deliveries` to
// `out`, byte for byte what serializing the equivalent message gives a
// parser, but with each event's stored bytes copied in rather than parsed
// and serialized again: that work dominated delivery.
void EncodeDeliveries(absl::Span<const OutboundDelivery> deliveries, std::string* out);

// The v1::Delivery a client receives (parses the event): for in-process
// consumers and tests.
v1::Delivery ToProto(const OutboundDelivery& delivery);

}  // namespace pettube::broker
