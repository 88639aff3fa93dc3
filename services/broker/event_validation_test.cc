#include "services/broker/event_validation.h"

#include "gtest/gtest.h"

namespace pettube::broker {
namespace {

using io::cloudevents::v1::CloudEvent;

CloudEvent ValidEvent() {
  CloudEvent e;
  e.set_id("1");
  e.set_source("//test");
  e.set_spec_version("1.0");
  e.set_type("pettube.test");
  return e;
}

TEST(EventValidationTest, ValidEventPasses) { EXPECT_TRUE(ValidateEvent(ValidEvent(), 4096).ok()); }

TEST(EventValidationTest, MissingSourceNamesTheField) {
  CloudEvent e = ValidEvent();
  e.clear_source();
  const absl::Status s = ValidateEvent(e, 4096);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "event.source: must not be empty");
}

TEST(EventValidationTest, BadAttributeNamesAndEmptyValuesAreRefused) {
  CloudEvent upper = ValidEvent();
  (*upper.mutable_attributes())["Subject"].set_ce_string("x");
  EXPECT_EQ(ValidateEvent(upper, 4096).code(), absl::StatusCode::kInvalidArgument);
  CloudEvent reserved = ValidEvent();
  (*reserved.mutable_attributes())["type"].set_ce_string("x");
  EXPECT_EQ(ValidateEvent(reserved, 4096).code(), absl::StatusCode::kInvalidArgument);
  CloudEvent unset = ValidEvent();
  (*unset.mutable_attributes())["subject"];
  EXPECT_EQ(ValidateEvent(unset, 4096).code(), absl::StatusCode::kInvalidArgument);
}

TEST(EventValidationTest, OversizedEventIsRefused) {
  CloudEvent e = ValidEvent();
  e.set_text_data(std::string(100, 'x'));
  EXPECT_TRUE(ValidateEvent(e, e.ByteSizeLong()).ok());
  EXPECT_EQ(ValidateEvent(e, e.ByteSizeLong() - 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(EventValidationTest, SubscriptionNamesFollowTheIdRule) {
  EXPECT_TRUE(ValidateName("subscriptions/media-ready-1", "name").ok());
  EXPECT_FALSE(ValidateName("subscription/x", "name").ok());
  EXPECT_FALSE(ValidateName("subscriptions/1abc", "name").ok());
  EXPECT_FALSE(ValidateName("subscriptions/", "name").ok());
  EXPECT_FALSE(ValidateSubscriptionId(std::string(64, 'a')).ok());
  EXPECT_TRUE(ValidateSubscriptionId(std::string(63, 'a')).ok());
  EXPECT_EQ(ValidateName("x", "attach.subscription").message().substr(0, 20),
            "attach.subscription:");
}

TEST(EventValidationTest, NormalizeFillsDefaultsAndChecksRanges) {
  v1::Subscription s;
  ASSERT_TRUE(NormalizeSettings(s).ok());
  EXPECT_EQ(s.ack_deadline().seconds(), 30);
  EXPECT_EQ(s.max_delivery_attempts(), kDefaultMaxAttempts);
  EXPECT_EQ(s.retry_policy().min_backoff().seconds(), 1);
  EXPECT_EQ(s.retry_policy().max_backoff().seconds(), 60);
  EXPECT_EQ(s.ordering(), v1::ORDERING_NONE);
  EXPECT_TRUE(s.dead_letter_policy().enabled());

  v1::Subscription short_deadline;
  short_deadline.mutable_ack_deadline()->set_nanos(500000000);
  EXPECT_EQ(NormalizeSettings(short_deadline).code(), absl::StatusCode::kInvalidArgument);
  v1::Subscription inverted;
  inverted.mutable_retry_policy()->mutable_min_backoff()->set_seconds(10);
  inverted.mutable_retry_policy()->mutable_max_backoff()->set_seconds(5);
  EXPECT_EQ(NormalizeSettings(inverted).code(), absl::StatusCode::kInvalidArgument);
  v1::Subscription too_many;
  too_many.set_max_delivery_attempts(kMaxMaxAttempts + 1);
  EXPECT_EQ(NormalizeSettings(too_many).code(), absl::StatusCode::kInvalidArgument);
}

TEST(EventValidationTest, LeaseIdsRoundTripAndGarbageIsRefused) {
  const LeaseIdParts parts{3, 42, 2, 99};
  const std::string id = FormatLeaseId(parts);
  EXPECT_EQ(id, "3-42-2-99");
  auto parsed = ParseLeaseId(id);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->subscription, 3u);
  EXPECT_EQ(parsed->sequence, 42u);
  EXPECT_EQ(parsed->attempt, 2u);
  EXPECT_EQ(parsed->key, 99u);
  for (const char* bad : {"", "1-2-3", "1-2-3-", "-1-2-3", "1-2-3-4-5", "1-+2-3-4", "a-b-c-d",
                          "1-2-3-99999999999999999999"}) {
    EXPECT_FALSE(ParseLeaseId(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace pettube::broker
