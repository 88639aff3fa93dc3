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

// How many of the first `deliveries` go in one SubscribeResponse of at
// most `max_bytes` (and at most `max_count`): always at least one, so an
// event larger than the limit travels alone, and no message is ever more
// than one event over it. Sizes are upper bounds (headers counted at
// their largest), so the encoded message is never bigger than promised.
size_t DeliveriesWithin(absl::Span<const OutboundDelivery> deliveries, size_t max_bytes,
                        size_t max_count);

// The v1::Delivery a client receives (parses the event): for in-process
// consumers and tests.
v1::Delivery ToProto(const OutboundDelivery& delivery);

}  // namespace pettube::broker
