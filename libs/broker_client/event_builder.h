#pragma once

// Helpers to build and read the CloudEvents every PetTube service publishes:
//
//   io::cloudevents::v1::CloudEvent event = pettube::broker_client::NewEvent(
//       "pettube.media.uploaded", "//pettube/upload", media_id, uploaded);
//   pettube::broker_client::SetPartitionKey(&event, media_id);
//   publisher.PublishAsync(std::move(event), ...);
//
// All functions are thread-safe (they share no state but a per-thread random
// generator).

#include <optional>
#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"

namespace pettube::broker_client {

// The CloudEvents version PetTube sends.
inline constexpr absl::string_view kSpecVersion = "1.0";
// `datacontenttype` of events whose payload is a packed protobuf message.
inline constexpr absl::string_view kProtobufContentType = "application/protobuf";
// Extension that orders deliveries on ORDERING_PARTITION_KEY subscriptions.
inline constexpr absl::string_view kPartitionKeyAttribute = "partitionkey";

// A random (version 4, RFC 4122 variant) UUID in its 36-character text form.
// Unique enough to be the `id` half of the broker's source + id dedup key.
std::string NewEventId();

// A complete event: spec_version "1.0", a fresh id, `time` now, `subject`
// (omitted when empty), `datacontenttype` "application/protobuf" and
// `payload` packed into proto_data (type URL "type.googleapis.com/<name>").
io::cloudevents::v1::CloudEvent NewEvent(absl::string_view type, absl::string_view source,
                                         absl::string_view subject,
                                         const google::protobuf::Message& payload);

// Sets the `partitionkey` extension (a string), replacing any previous one.
void SetPartitionKey(io::cloudevents::v1::CloudEvent* event, absl::string_view key);

// The value of a context attribute or extension as text, as the broker's
// filters see it: "id", "source", "specversion", "type" come from the typed
// fields; other names from `attributes` (booleans "true"/"false", integers in
// decimal, timestamps RFC 3339 UTC, bytes base64). nullopt when absent.
std::optional<std::string> GetAttribute(const io::cloudevents::v1::CloudEvent& event,
                                        absl::string_view name);

// Unpacks proto_data into `payload`. INVALID_ARGUMENT when the event carries
// no protobuf payload or one of another message type (the message names
// both types).
absl::Status UnpackPayload(const io::cloudevents::v1::CloudEvent& event,
                           google::protobuf::Message* payload);

}  // namespace pettube::broker_client
