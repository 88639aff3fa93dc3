#include "services/broker/delivery_wire.h"

#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace pettube::broker {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

// Bytes a length-delimited field takes: tag, length, payload.
size_t FieldSize(int field_number, size_t payload) {
  return WireFormatLite::TagSize(field_number, WireFormatLite::TYPE_BYTES) +
         CodedOutputStream::VarintSize64(payload) + payload;
}

void WriteFieldHeader(int field_number, size_t payload, CodedOutputStream* out) {
  out->WriteTag(WireFormatLite::MakeTag(field_number, WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
  out->WriteVarint64(payload);
}

}  // namespace

void EncodeDeliveries(absl::Span<const OutboundDelivery> deliveries, std::string* out) {
  // Sizes first: every length prefix comes before its payload.
  std::vector<size_t> delivery_sizes;
  delivery_sizes.reserve(deliveries.size());
  size_t batch_size = 0;
  for (const OutboundDelivery& d : deliveries) {
    size_t size = d.header.ByteSizeLong();  // caches sizes for the write below
    if (d.event != nullptr)
      size += FieldSize(v1::Delivery::kEventFieldNumber, d.event->wire.size());
    delivery_sizes.push_back(size);
    batch_size += FieldSize(v1::Deliveries::kDeliveriesFieldNumber, size);
  }
  const size_t total = FieldSize(v1::SubscribeResponse::kDeliveriesFieldNumber, batch_size);
  out->reserve(out->size() + total);  // before the stream takes the buffer
  google::protobuf::io::StringOutputStream stream(out);
  CodedOutputStream coded(&stream);
  WriteFieldHeader(v1::SubscribeResponse::kDeliveriesFieldNumber, batch_size, &coded);
  for (size_t i = 0; i < deliveries.size(); ++i) {
    const OutboundDelivery& d = deliveries[i];
    WriteFieldHeader(v1::Deliveries::kDeliveriesFieldNumber, delivery_sizes[i], &coded);
    d.header.SerializeWithCachedSizes(&coded);
    // Fields may come in any order on the wire: the event goes last.
    if (d.event != nullptr) {
      WriteFieldHeader(v1::Delivery::kEventFieldNumber, d.event->wire.size(), &coded);
      coded.WriteRaw(d.event->wire.data(), static_cast<int>(d.event->wire.size()));
    }
  }
  coded.Trim();
}

size_t DeliveriesWithin(absl::Span<const OutboundDelivery> deliveries, size_t max_bytes,
                        size_t max_count) {
  // The response's own framing (tag and length of `deliveries`), then per
  // delivery its framing, header and event field. A header is at most a
  // 60-byte lease id, two timestamps, a sequence and an attempt: under
  // 160 bytes; 192 leaves room.
  constexpr size_t kResponseOverhead = 16;
  constexpr size_t kDeliveryOverhead = 192;
  size_t total = kResponseOverhead;
  size_t n = 0;
  for (const OutboundDelivery& d : deliveries) {
    if (n == max_count) break;
    const size_t size = kDeliveryOverhead + (d.event != nullptr ? d.event->wire.size() : 0) +
                        d.header.lease_id().size();
    if (n > 0 && total + size > max_bytes) break;
    total += size;
    ++n;
  }
  return n;
}

v1::Delivery ToProto(const OutboundDelivery& delivery) {
  v1::Delivery out = delivery.header;
  if (delivery.event != nullptr) delivery.event->Parse(out.mutable_event());
  return out;
}

}  // namespace pettube::broker
