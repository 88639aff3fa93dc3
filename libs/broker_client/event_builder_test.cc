#include "libs/broker_client/event_builder.h"

#include <string>

#include <google/protobuf/wrappers.pb.h>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace pettube::broker_client {
namespace {

using ::io::cloudevents::v1::CloudEvent;

google::protobuf::Int32Value Payload(int value) {
  google::protobuf::Int32Value payload;
  payload.set_value(value);
  return payload;
}

TEST(EventBuilderTest, NewEventHasRequiredAndOptionalAttributes) {
  const absl::Time before = absl::Now();
  const CloudEvent event =
      NewEvent("pettube.media.uploaded", "//pettube/upload", "media/42", Payload(7));
  const absl::Time after = absl::Now();

  EXPECT_EQ(event.spec_version(), "1.0");
  EXPECT_EQ(event.type(), "pettube.media.uploaded");
  EXPECT_EQ(event.source(), "//pettube/upload");
  EXPECT_EQ(event.id().size(), 36u) << event.id();
  EXPECT_EQ(GetAttribute(event, "subject"), "media/42");
  EXPECT_EQ(GetAttribute(event, "datacontenttype"), "application/protobuf");

  const auto& time = event.attributes().at("time").ce_timestamp();
  const absl::Time stamped = absl::FromUnixSeconds(time.seconds()) + absl::Nanoseconds(time.nanos());
  EXPECT_GE(stamped, before);
  EXPECT_LE(stamped, after);

  EXPECT_EQ(event.proto_data().type_url(), "type.googleapis.com/google.protobuf.Int32Value");
  google::protobuf::Int32Value unpacked;
  ASSERT_TRUE(UnpackPayload(event, &unpacked).ok());
  EXPECT_EQ(unpacked.value(), 7);
}

TEST(EventBuilderTest, EmptySubjectIsOmitted) {
  const CloudEvent event = NewEvent("t", "s", "", Payload(1));
  EXPECT_FALSE(GetAttribute(event, "subject").has_value());
}

TEST(EventBuilderTest, IdsAreVersion4UuidsAndUnique) {
  absl::flat_hash_set<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = NewEventId();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[8], '-');
    EXPECT_EQ(id[13], '-');
    EXPECT_EQ(id[14], '4') << id;  // version
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;  // variant
    EXPECT_TRUE(ids.insert(id).second) << "repeated id " << id;
  }
}

TEST(EventBuilderTest, PartitionKeyIsAStringExtensionAndIsReplaced) {
  CloudEvent event = NewEvent("t", "s", "x", Payload(1));
  SetPartitionKey(&event, "media/1");
  SetPartitionKey(&event, "media/2");
  EXPECT_EQ(event.attributes().at("partitionkey").ce_string(), "media/2");
  EXPECT_EQ(GetAttribute(event, "partitionkey"), "media/2");
}

TEST(EventBuilderTest, GetAttributeReadsTypedFieldsAndEveryValueKind) {
  CloudEvent event;
  event.set_id("e-1");
  event.set_source("//s");
  event.set_spec_version("1.0");
  event.set_type("t.x");
  auto& attributes = *event.mutable_attributes();
  attributes["flag"].set_ce_boolean(true);
  attributes["count"].set_ce_integer(-3);
  attributes["blob"].set_ce_bytes("hi");
  attributes["link"].set_ce_uri("https://example.com/a");
  attributes["ref"].set_ce_uri_ref("/a/b");
  attributes["at"].mutable_ce_timestamp()->set_seconds(0);
  attributes["empty"];  // present but without a value

  EXPECT_EQ(GetAttribute(event, "id"), "e-1");
  EXPECT_EQ(GetAttribute(event, "source"), "//s");
  EXPECT_EQ(GetAttribute(event, "specversion"), "1.0");
  EXPECT_EQ(GetAttribute(event, "type"), "t.x");
  EXPECT_EQ(GetAttribute(event, "flag"), "true");
  EXPECT_EQ(GetAttribute(event, "count"), "-3");
  EXPECT_EQ(GetAttribute(event, "blob"), "aGk=");
  EXPECT_EQ(GetAttribute(event, "link"), "https://example.com/a");
  EXPECT_EQ(GetAttribute(event, "ref"), "/a/b");
  EXPECT_EQ(GetAttribute(event, "at"), "1970-01-01T00:00:00+00:00");
  EXPECT_FALSE(GetAttribute(event, "empty").has_value());
  EXPECT_FALSE(GetAttribute(event, "missing").has_value());
}

TEST(EventBuilderTest, UnpackPayloadRefusesAnotherTypeNamingBoth) {
  const CloudEvent event = NewEvent("t", "s", "x", Payload(1));
  google::protobuf::StringValue wrong;
  const absl::Status status = UnpackPayload(event, &wrong);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("google.protobuf.Int32Value"), absl::string_view::npos)
      << status;
  EXPECT_NE(status.message().find("google.protobuf.StringValue"), absl::string_view::npos)
      << status;
}

TEST(EventBuilderTest, UnpackPayloadRefusesAnEventWithoutProtoData) {
  CloudEvent event;
  event.set_text_data("{}");
  google::protobuf::Int32Value payload;
  EXPECT_EQ(UnpackPayload(event, &payload).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pettube::broker_client
