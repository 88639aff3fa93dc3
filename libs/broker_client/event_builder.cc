#include "libs/broker_client/event_builder.h"

#include <cstdint>
#include <string>

#include <google/protobuf/any.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pettube::broker_client {
namespace {

using ::io::cloudevents::v1::CloudEvent;

void SetTimestamp(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(time);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>((time - absl::FromUnixSeconds(seconds)) /
                                      absl::Nanoseconds(1)));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

}  // namespace

std::string NewEventId() {
  // One generator per thread: seeding is costly and sharing one would need a
  // lock on every publish.
  thread_local absl::BitGen gen;
  uint64_t hi = absl::Uniform<uint64_t>(gen);
  uint64_t lo = absl::Uniform<uint64_t>(gen);
  hi = (hi & ~uint64_t{0xF000}) | uint64_t{0x4000};          // version 4
  lo = (lo & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);  // RFC 4122 variant
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xFFFF,
                         hi & 0xFFFF, lo >> 48, lo & 0xFFFFFFFFFFFF);
}

CloudEvent NewEvent(absl::string_view type, absl::string_view source, absl::string_view subject,
                    const google::protobuf::Message& payload) {
  CloudEvent event;
  event.set_id(NewEventId());
  event.set_source(std::string(source));
  event.set_spec_version(std::string(kSpecVersion));
  event.set_type(std::string(type));
  auto& attributes = *event.mutable_attributes();
  SetTimestamp(absl::Now(), attributes["time"].mutable_ce_timestamp());
  if (!subject.empty()) attributes["subject"].set_ce_string(std::string(subject));
  attributes["datacontenttype"].set_ce_string(std::string(kProtobufContentType));
  event.mutable_proto_data()->PackFrom(payload);
  return event;
}

void SetPartitionKey(CloudEvent* event, absl::string_view key) {
  (*event->mutable_attributes())[std::string(kPartitionKeyAttribute)].set_ce_string(
      std::string(key));
}

std::optional<std::string> GetAttribute(const CloudEvent& event, absl::string_view name) {
  if (name == "id") return event.id();
  if (name == "source") return event.source();
  if (name == "specversion") return event.spec_version();
  if (name == "type") return event.type();
  const auto it = event.attributes().find(std::string(name));
  if (it == event.attributes().end()) return std::nullopt;
  const CloudEvent::CloudEventAttributeValue& value = it->second;
  switch (value.attr_case()) {
    case CloudEvent::CloudEventAttributeValue::kCeBoolean:
      return std::string(value.ce_boolean() ? "true" : "false");
    case CloudEvent::CloudEventAttributeValue::kCeInteger:
      return absl::StrCat(value.ce_integer());
    case CloudEvent::CloudEventAttributeValue::kCeString:
      return value.ce_string();
    case CloudEvent::CloudEventAttributeValue::kCeBytes:
      return absl::Base64Escape(value.ce_bytes());
    case CloudEvent::CloudEventAttributeValue::kCeUri:
      return value.ce_uri();
    case CloudEvent::CloudEventAttributeValue::kCeUriRef:
      return value.ce_uri_ref();
    case CloudEvent::CloudEventAttributeValue::kCeTimestamp:
      return absl::FormatTime(absl::RFC3339_full, FromTimestamp(value.ce_timestamp()),
                              absl::UTCTimeZone());
    case CloudEvent::CloudEventAttributeValue::ATTR_NOT_SET:
      break;
  }
  // A key with no value set carries nothing a filter could compare.
  return std::nullopt;
}

absl::Status UnpackPayload(const CloudEvent& event, google::protobuf::Message* payload) {
  if (event.data_case() != CloudEvent::kProtoData) {
    return absl::InvalidArgumentError(
        absl::StrCat("event.proto_data: not set (event ", event.id(), " of type ", event.type(),
                     ")"));
  }
  const std::string& type_url = event.proto_data().type_url();
  const absl::string_view type_name =
      absl::string_view(type_url).substr(type_url.rfind('/') + 1);
  if (type_name != payload->GetDescriptor()->full_name()) {
    return absl::InvalidArgumentError(absl::StrCat("event.proto_data: holds \"", type_url,
                                                   "\", want ",
                                                   payload->GetDescriptor()->full_name()));
  }
  if (!event.proto_data().UnpackTo(payload)) {
    return absl::InvalidArgumentError(absl::StrCat("event.proto_data: cannot parse \"",
                                                   type_url, "\" (event ", event.id(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace pettube::broker_client
