#include "services/broker/delivery_wire.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"

namespace pettube::broker {
namespace {

using google::protobuf::util::MessageDifferencer;

std::shared_ptr<const StoredEvent> Stored(uint64_t seq, const std::string& data) {
  CloudEvent e;
  e.set_id(absl::StrCat("id-", seq));
  e.set_source("/test");
  e.set_spec_version("1.0");
  e.set_type("pettube.test");
  e.set_binary_data(data);
  (*e.mutable_attributes())["partitionkey"].set_ce_string("k");
  auto stored = std::make_shared<StoredEvent>();
  stored->sequence = seq;
  stored->wire = e.SerializeAsString();
  return stored;
}

OutboundDelivery Outbound(uint64_t seq, std::shared_ptr<const StoredEvent> event) {
  OutboundDelivery d;
  d.header.set_lease_id(absl::StrCat("1-", seq, "-1-", seq));
  d.header.set_sequence(seq);
  d.header.set_attempt(1);
  d.header.mutable_publish_time()->set_seconds(1700000000);
  d.header.mutable_lease_deadline()->set_seconds(1700000030);
  d.event = std::move(event);
  return d;
}

TEST(EncodeDeliveriesTest, ParsesAsTheSubscribeResponseItStandsFor) {
  std::vector<OutboundDelivery> deliveries;
  // Sizes around the one-byte varint boundary, and a large event.
  for (size_t size : {0, 1, 60, 127, 128, 300, 70000}) {
    deliveries.push_back(Outbound(deliveries.size() + 1, Stored(size, std::string(size, 'x'))));
  }
  std::string bytes;
  EncodeDeliveries(deliveries, &bytes);

  v1::SubscribeResponse expected;
  for (const auto& d : deliveries) *expected.mutable_deliveries()->add_deliveries() = ToProto(d);
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, expected)) << parsed.DebugString();
  ASSERT_EQ(parsed.deliveries().deliveries_size(), 7);
  EXPECT_EQ(parsed.deliveries().deliveries(6).event().binary_data().size(), 70000u);
  EXPECT_EQ(parsed.deliveries().deliveries(2).event().attributes().at("partitionkey").ce_string(),
            "k");
  // Same length as the ordinary serialization: nothing extra on the wire.
  EXPECT_EQ(bytes.size(), expected.ByteSizeLong());
}

TEST(EncodeDeliveriesTest, AppendsToWhatIsAlreadyThere) {
  std::string bytes = "prefix";
  EncodeDeliveries({Outbound(1, Stored(1, "a"))}, &bytes);
  EXPECT_EQ(bytes.substr(0, 6), "prefix");
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes.substr(6)));
  EXPECT_EQ(parsed.deliveries().deliveries(0).event().binary_data(), "a");
}

TEST(EncodeDeliveriesTest, DeliveryWithoutEventHasNoEventField) {
  std::string bytes;
  EncodeDeliveries({Outbound(5, nullptr)}, &bytes);
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_FALSE(parsed.deliveries().deliveries(0).has_event());
  EXPECT_EQ(parsed.deliveries().deliveries(0).sequence(), 5u);
}

}  // namespace
}  // namespace pettube::broker
