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

v1::Delivery ToProto(const OutboundDelivery& delivery) {
  v1::Delivery out = delivery.header;
  if (delivery.event != nullptr) delivery.event->Parse(out.mutable_event());
  return out;
}

}  // namespace pettube::broker
