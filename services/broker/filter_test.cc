#include "services/broker/filter.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace pettube::broker {
namespace {

using ::io::cloudevents::v1::CloudEvent;
using ::pettube::broker::v1::Filter;
using ::testing::HasSubstr;

Filter ParseFilter(const std::string& text) {
  Filter filter;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &filter)) << text;
  return filter;
}

// An upload event with a subject and a partitionkey extension.
CloudEvent UploadedEvent() {
  CloudEvent event;
  event.set_id("e-1");
  event.set_source("//pettube/upload");
  event.set_spec_version("1.0");
  event.set_type("pettube.media.uploaded");
  (*event.mutable_attributes())["subject"].set_ce_string("media/42");
  (*event.mutable_attributes())["partitionkey"].set_ce_string("user-7");
  return event;
}

TEST(MatchesTest, ExactMatchesOnlyAnEqualValue) {
  const Filter filter =
      ParseFilter(R"pb(exact { attribute: "type" value: "pettube.media.uploaded" })pb");
  CloudEvent event = UploadedEvent();
  EXPECT_TRUE(Matches(filter, event));
  event.set_type("pettube.media.uploaded.v2");
  EXPECT_FALSE(Matches(filter, event));
  event.set_type("Pettube.media.uploaded");
  EXPECT_FALSE(Matches(filter, event));
}

TEST(MatchesTest, PrefixMatchesTheStartOfTheValue) {
  const Filter filter = ParseFilter(R"pb(prefix { attribute: "type" value: "pettube.media." })pb");
  CloudEvent event = UploadedEvent();
  EXPECT_TRUE(Matches(filter, event));
  event.set_type("pettube.media.");
  EXPECT_TRUE(Matches(filter, event));
  event.set_type("pettube.user.created");
  EXPECT_FALSE(Matches(filter, event));
}

TEST(MatchesTest, SuffixMatchesTheEndOfTheValue) {
  const Filter filter = ParseFilter(R"pb(suffix { attribute: "source" value: "/upload" })pb");
  CloudEvent event = UploadedEvent();
  EXPECT_TRUE(Matches(filter, event));
  event.set_source("//pettube/upload/v2");
  EXPECT_FALSE(Matches(filter, event));
}

TEST(MatchesTest, ExistsMatchesWhenTheAttributeIsPresent) {
  CloudEvent event = UploadedEvent();
  EXPECT_TRUE(Matches(ParseFilter(R"pb(exists: "partitionkey")pb"), event));
  EXPECT_TRUE(Matches(ParseFilter(R"pb(exists: "type")pb"), event));
  EXPECT_FALSE(Matches(ParseFilter(R"pb(exists: "dataschema")pb"), event));
}

TEST(MatchesTest, AnythingButMatchesAPresentAttributeWithAnotherValue) {
  const Filter filter = ParseFilter(R"pb(anything_but {
                                           attribute: "source"
                                           values: "//pettube/upload"
                                           values: "//pettube/auth"
                                         })pb");
  CloudEvent event = UploadedEvent();
  EXPECT_FALSE(Matches(filter, event));
  event.set_source("//pettube/auth");
  EXPECT_FALSE(Matches(filter, event));
  event.set_source("//pettube/catalog");
  EXPECT_TRUE(Matches(filter, event));
}

TEST(MatchesTest, AnythingButDoesNotMatchAMissingAttribute) {
  const Filter filter = ParseFilter(R"pb(anything_but { attribute: "dataschema" values: "x" })pb");
  EXPECT_FALSE(Matches(filter, UploadedEvent()));
}

TEST(MatchesTest, AllNeedsEveryChildToMatch) {
  const Filter filter = ParseFilter(R"pb(
    all {
      filters { prefix { attribute: "type" value: "pettube.media." } }
      filters { exact { attribute: "partitionkey" value: "user-7" } }
    })pb");
  CloudEvent event = UploadedEvent();
  EXPECT_TRUE(Matches(filter, event));
  (*event.mutable_attributes())["partitionkey"].set_ce_string("user-8");
  EXPECT_FALSE(Matches(filter, event));
}

TEST(MatchesTest, AnyNeedsOneChildToMatch) {
  const Filter filter = ParseFilter(R"pb(
    any {
      filters { exact { attribute: "type" value: "pettube.user.created" } }
      filters { suffix { attribute: "source" value: "/upload" } }
    })pb");
  CloudEvent event = UploadedEvent();
  EXPECT_TRUE(Matches(filter, event));
  event.set_source("//pettube/catalog");
  EXPECT_FALSE(Matches(filter, event));
  event.set_type("pettube.user.created");
  EXPECT_TRUE(Matches(filter, event));
}

TEST(MatchesTest, NotNegatesItsChild) {
  const Filter filter = ParseFilter(R"pb(not { exists: "partitionkey" })pb");
  CloudEvent event = UploadedEvent();
  EXPECT_FALSE(Matches(filter, event));
  event.mutable_attributes()->erase("partitionkey");
  EXPECT_TRUE(Matches(filter, event));
}

TEST(MatchesTest, NestedAllAnyAndNotCombine) {
  // Media events, except deletions, from upload or transcode.
  const Filter filter = ParseFilter(R"pb(
    all {
      filters { prefix { attribute: "type" value: "pettube.media." } }
      filters { not { exact { attribute: "type" value: "pettube.media.deleted" } } }
      filters {
        any {
          filters { suffix { attribute: "source" value: "/upload" } }
          filters { suffix { attribute: "source" value: "/transcode" } }
        }
      }
    })pb");
  ASSERT_TRUE(ValidateFilter(filter).ok());
  CloudEvent event = UploadedEvent();
  EXPECT_TRUE(Matches(filter, event));
  event.set_source("//pettube/transcode");
  EXPECT_TRUE(Matches(filter, event));
  event.set_type("pettube.media.deleted");
  EXPECT_FALSE(Matches(filter, event));
  event.set_type("pettube.media.transcoded");
  event.set_source("//pettube/catalog");
  EXPECT_FALSE(Matches(filter, event));
}

TEST(MatchesTest, MatchAllFilterMatchesEveryEvent) {
  const Filter filter;
  EXPECT_TRUE(IsMatchAll(filter));
  EXPECT_TRUE(Matches(filter, UploadedEvent()));
  EXPECT_TRUE(Matches(filter, CloudEvent()));
  EXPECT_FALSE(IsMatchAll(ParseFilter(R"pb(exists: "type")pb")));
}

TEST(MatchesTest, ExtensionAttributesAreMatchedLikeContextAttributes) {
  const CloudEvent event = UploadedEvent();
  EXPECT_TRUE(
      Matches(ParseFilter(R"pb(exact { attribute: "partitionkey" value: "user-7" })pb"), event));
  EXPECT_TRUE(
      Matches(ParseFilter(R"pb(prefix { attribute: "subject" value: "media/" })pb"), event));
  EXPECT_FALSE(
      Matches(ParseFilter(R"pb(prefix { attribute: "subject" value: "user/" })pb"), event));
}

TEST(MatchesTest, NonStringAttributesAreComparedInTheirStringForm) {
  CloudEvent event = UploadedEvent();
  auto& attributes = *event.mutable_attributes();
  attributes["retry"].set_ce_boolean(true);
  attributes["size"].set_ce_integer(-42);
  attributes["time"].mutable_ce_timestamp()->set_seconds(1714564800);  // 2024-05-01T12:00:00Z
  attributes["dataschema"].set_ce_uri("https://pettube.example/schemas/media");
  attributes["blob"].set_ce_bytes("hi");
  EXPECT_TRUE(Matches(ParseFilter(R"pb(exact { attribute: "retry" value: "true" })pb"), event));
  EXPECT_TRUE(Matches(ParseFilter(R"pb(exact { attribute: "size" value: "-42" })pb"), event));
  EXPECT_TRUE(Matches(
      ParseFilter(R"pb(exact { attribute: "time" value: "2024-05-01T12:00:00Z" })pb"), event));
  EXPECT_TRUE(Matches(ParseFilter(R"pb(prefix { attribute: "time" value: "2024-05" })pb"), event));
  EXPECT_TRUE(
      Matches(ParseFilter(R"pb(suffix { attribute: "dataschema" value: "/media" })pb"), event));
  EXPECT_TRUE(Matches(ParseFilter(R"pb(exact { attribute: "blob" value: "aGk=" })pb"), event));
}

TEST(AttributeValueTest, TypedFieldsServeTheRequiredAttributes) {
  const CloudEvent event = UploadedEvent();
  EXPECT_EQ(AttributeValue(event, "id")->view(), "e-1");
  EXPECT_EQ(AttributeValue(event, "source")->view(), "//pettube/upload");
  EXPECT_EQ(AttributeValue(event, "specversion")->view(), "1.0");
  EXPECT_EQ(AttributeValue(event, "type")->view(), "pettube.media.uploaded");
  EXPECT_FALSE(AttributeValue(event, "spec_version").has_value());
}

TEST(AttributeValueTest, StringValuesAreBorrowedFromTheEvent) {
  const CloudEvent event = UploadedEvent();
  EXPECT_EQ(AttributeValue(event, "type")->view().data(), event.type().data());
  EXPECT_EQ(AttributeValue(event, "subject")->view().data(),
            event.attributes().at("subject").ce_string().data());
}

TEST(AttributeValueTest, EmptyTypedFieldIsAbsent) {
  CloudEvent event = UploadedEvent();
  event.clear_id();
  EXPECT_FALSE(AttributeValue(event, "id").has_value());
  EXPECT_FALSE(Matches(ParseFilter(R"pb(exists: "id")pb"), event));
}

TEST(AttributeValueTest, MapEntryCannotShadowATypedField) {
  CloudEvent event = UploadedEvent();
  (*event.mutable_attributes())["type"].set_ce_string("forged");
  EXPECT_EQ(AttributeValue(event, "type")->view(), "pettube.media.uploaded");
  event.clear_type();
  EXPECT_FALSE(AttributeValue(event, "type").has_value());
}

TEST(AttributeValueTest, MapEntryWithoutValueIsAbsent) {
  CloudEvent event = UploadedEvent();
  (*event.mutable_attributes())["traceparent"];
  EXPECT_FALSE(AttributeValue(event, "traceparent").has_value());
}

// ValidateFilter

void ExpectInvalid(const Filter& filter, const std::string& message) {
  const absl::Status status = ValidateFilter(filter);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(message));
}

TEST(ValidateFilterTest, AcceptsAFilterOfEveryKind) {
  const Filter filter = ParseFilter(R"pb(
    all {
      filters { exact { attribute: "type" value: "pettube.media.uploaded" } }
      filters { exact { attribute: "partitionkey" value: "" } }
      filters { prefix { attribute: "subject" value: "media/" } }
      filters { suffix { attribute: "source" value: "/upload" } }
      filters { exists: "time" }
      filters { anything_but { attribute: "datacontenttype" values: "text/plain" } }
      filters { any { filters { not { exists: "x1" } } } }
    })pb");
  EXPECT_TRUE(ValidateFilter(filter).ok()) << ValidateFilter(filter);
}

TEST(ValidateFilterTest, AcceptsAnEmptyTopLevelFilterAsMatchAll) {
  EXPECT_TRUE(ValidateFilter(Filter()).ok());
}

TEST(ValidateFilterTest, RejectsAnEmptyNestedFilter) {
  ExpectInvalid(ParseFilter(R"pb(not {})pb"), "filter.not: no filter kind set");
  ExpectInvalid(ParseFilter(R"pb(any {
                                   filters { exists: "type" }
                                   filters {}
                                 })pb"),
                "filter.any.filters[1]: no filter kind set");
}

TEST(ValidateFilterTest, RejectsAnEmptyPrefixNamingItsPath) {
  ExpectInvalid(ParseFilter(R"pb(
                  all {
                    filters { exists: "type" }
                    filters { exists: "source" }
                    filters { prefix { attribute: "type" value: "" } }
                  })pb"),
                "filter.all.filters[2].prefix.value: must not be empty");
  ExpectInvalid(ParseFilter(R"pb(suffix { attribute: "type" })pb"),
                "filter.suffix.value: must not be empty");
}

TEST(ValidateFilterTest, RejectsAttributeNamesOutsideCloudEventsNaming) {
  const absl::Status status =
      ValidateFilter(ParseFilter(R"pb(exact { attribute: "Type" value: "x" })pb"));
  EXPECT_EQ(status, absl::InvalidArgumentError(
                        "filter.exact.attribute: \"Type\" must be lower-case [a-z0-9], 1-20 "
                        "chars (CloudEvents attribute naming)"));
  ExpectInvalid(ParseFilter(R"pb(exists: "")pb"), "filter.exists: \"\" must be lower-case");
  ExpectInvalid(ParseFilter(R"pb(exists: "partition_key")pb"),
                "filter.exists: \"partition_key\" must be lower-case");
  ExpectInvalid(ParseFilter(R"pb(exists: "abcdefghijklmnopqrstu")pb"),  // 21 chars
                "filter.exists: \"abcdefghijklmnopqrstu\" must be lower-case");
  ExpectInvalid(ParseFilter(R"pb(anything_but { attribute: "a-b" values: "x" })pb"),
                "filter.anything_but.attribute: \"a-b\"");
  EXPECT_TRUE(ValidateFilter(ParseFilter(R"pb(exists: "abcdefghijklmnopqrst")pb")).ok());
}

TEST(ValidateFilterTest, RejectsEmptyLists) {
  ExpectInvalid(ParseFilter(R"pb(any {})pb"), "filter.any.filters: must not be empty");
  ExpectInvalid(ParseFilter(R"pb(not { all {} })pb"), "filter.not.all.filters: must not be empty");
  ExpectInvalid(ParseFilter(R"pb(anything_but { attribute: "type" })pb"),
                "filter.anything_but.values: must not be empty");
}

TEST(ValidateFilterTest, RejectsValuesOverTheLengthLimit) {
  Filter filter;
  filter.mutable_exact()->set_attribute("subject");
  filter.mutable_exact()->set_value(std::string(kMaxFilterValueLength, 'x'));
  EXPECT_TRUE(ValidateFilter(filter).ok());
  filter.mutable_exact()->set_value(std::string(kMaxFilterValueLength + 1, 'x'));
  ExpectInvalid(filter, "filter.exact.value: 1025 bytes exceeds the limit of 1024 bytes");

  filter.Clear();
  filter.mutable_anything_but()->set_attribute("subject");
  filter.mutable_anything_but()->add_values("ok");
  filter.mutable_anything_but()->add_values(std::string(2000, 'x'));
  ExpectInvalid(filter, "filter.anything_but.values[1]: 2000 bytes exceeds");
}

// `levels` filters deep: not { not { ... exists: "type" } }.
Filter NestedNots(int levels) {
  Filter filter;
  filter.set_exists("type");
  for (int i = 1; i < levels; ++i) {
    Filter outer;
    *outer.mutable_not_() = std::move(filter);
    filter = std::move(outer);
  }
  return filter;
}

TEST(ValidateFilterTest, RejectsNestingDeeperThanTheLimit) {
  EXPECT_TRUE(ValidateFilter(NestedNots(kMaxFilterDepth)).ok());
  std::string path = "filter";
  for (int i = 1; i < kMaxFilterDepth + 1; ++i) absl::StrAppend(&path, ".not");
  ExpectInvalid(NestedNots(kMaxFilterDepth + 1),
                absl::StrCat(path, ": nested deeper than the limit of 8 levels"));
}

TEST(ValidateFilterTest, RejectsMoreNodesThanTheLimit) {
  Filter filter;
  for (int i = 0; i < kMaxFilterNodes - 1; ++i) {
    filter.mutable_any()->add_filters()->set_exists("type");
  }
  EXPECT_TRUE(ValidateFilter(filter).ok());  // the any node + 63 children
  filter.mutable_any()->add_filters()->set_exists("type");
  ExpectInvalid(filter, "filter: has more than the limit of 64 filter nodes");
}

TEST(FilterValidationTest, AnythingButWithTooManyValuesIsRefused) {
  pettube::broker::v1::Filter f;
  f.mutable_anything_but()->set_attribute("type");
  for (int i = 0; i <= kMaxAnythingButValues; ++i) {
    f.mutable_anything_but()->add_values(absl::StrCat("v", i));
  }
  const absl::Status s = ValidateFilter(f);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("filter.anything_but.values"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace pettube::broker
