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

TEST(DeliveriesWithinTest, PacksUnderTheByteLimitAndNeverMoreThanOneEventOver) {
  constexpr size_t kLimit = 4 << 20;
  const auto big = Stored(1, std::string(900 * 1000, 'x'));
  std::vector<OutboundDelivery> deliveries;
  for (uint64_t seq = 1; seq <= 40; ++seq) deliveries.push_back(Outbound(seq, big));
  const size_t n = DeliveriesWithin(deliveries, kLimit, 256);
  EXPECT_EQ(n, 4u);  // 4 x 900 KB fit in 4 MiB, 5 do not
  std::string bytes;
  EncodeDeliveries(absl::MakeConstSpan(deliveries.data(), n), &bytes);
  EXPECT_LE(bytes.size(), kLimit);
  // The count limit still applies to small events.
  std::vector<OutboundDelivery> small;
  const auto tiny = Stored(2, "t");
  for (uint64_t seq = 1; seq <= 300; ++seq) small.push_back(Outbound(seq, tiny));
  EXPECT_EQ(DeliveriesWithin(small, kLimit, 256), 256u);
  // An event over the limit travels alone.
  std::vector<OutboundDelivery> huge = {Outbound(1, Stored(3, std::string(kLimit + 10, 'y'))),
                                        Outbound(2, tiny)};
  EXPECT_EQ(DeliveriesWithin(huge, kLimit, 256), 1u);
  // Whatever the mix, the encoded message stays within the limit.
  std::vector<OutboundDelivery> mixed;
  for (uint64_t seq = 1; seq <= 200; ++seq) {
    mixed.push_back(Outbound(seq * 1000003, Stored(seq, std::string((seq * 7919) % 60000, 'z'))));
  }
  for (size_t limit : {size_t{1000}, size_t{65536}, size_t{300000}}) {
    size_t at = 0;
    while (at < mixed.size()) {
      const auto rest = absl::MakeConstSpan(mixed.data() + at, mixed.size() - at);
      const size_t take = DeliveriesWithin(rest, limit, 256);
      ASSERT_GE(take, 1u);
      std::string out;
      EncodeDeliveries(rest.subspan(0, take), &out);
      if (take > 1) {
        EXPECT_LE(out.size(), limit);
      }
      at += take;
    }
  }
}

}  // namespace
}  // namespace pettube::broker
