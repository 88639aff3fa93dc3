#include "services/broker/filter_index.h"

#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "services/broker/filter.h"

// Heap allocations made on this thread while `count_allocations` is set.
thread_local bool count_allocations = false;
thread_local int allocations = 0;

void* operator new(size_t size) {
  if (count_allocations) ++allocations;
  void* p = std::malloc(size == 0 ? 1 : size);
  if (p == nullptr) std::abort();
  return p;
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace pettube::broker {
namespace {

using ::io::cloudevents::v1::CloudEvent;
using ::pettube::broker::v1::Filter;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

Filter ParseFilter(const std::string& text) {
  Filter filter;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &filter)) << text;
  return filter;
}

CloudEvent Event(const std::string& type, const std::string& source) {
  CloudEvent event;
  event.set_id("e-1");
  event.set_source(source);
  event.set_spec_version("1.0");
  event.set_type(type);
  return event;
}

std::vector<uint32_t> MatchIds(const FilterIndex& index, const CloudEvent& event) {
  std::vector<uint32_t> ids;
  index.Match(event, &ids);
  return ids;
}

TEST(FilterIndexTest, MatchReturnsEachMatchingSubscriptionOnceInAscendingOrder) {
  FilterIndex index;
  index.Add(30, ParseFilter(R"pb(exact { attribute: "type" value: "pettube.media.uploaded" })pb"));
  index.Add(10, ParseFilter(R"pb(prefix { attribute: "type" value: "pettube.media." })pb"));
  index.Add(20, ParseFilter(R"pb(suffix { attribute: "type" value: ".uploaded" })pb"));
  // Hit by two of its keys, listed once.
  index.Add(5, ParseFilter(R"pb(any {
                                  filters { prefix { attribute: "type" value: "pettube." } }
                                  filters { suffix { attribute: "source" value: "/upload" } }
                                })pb"));
  index.Add(40, ParseFilter(R"pb(exact { attribute: "type" value: "pettube.user.created" })pb"));
  EXPECT_EQ(index.size(), 5);

  EXPECT_THAT(MatchIds(index, Event("pettube.media.uploaded", "//pettube/upload")),
              ElementsAre(5, 10, 20, 30));
  EXPECT_THAT(MatchIds(index, Event("pettube.user.created", "//pettube/auth")), ElementsAre(5, 40));
  EXPECT_THAT(MatchIds(index, Event("other", "//other")), IsEmpty());
}

TEST(FilterIndexTest, MatchAppendsAfterWhatTheOutputHeld) {
  FilterIndex index;
  index.Add(2, ParseFilter(R"pb(exists: "type")pb"));
  index.Add(1, ParseFilter(R"pb(not { exists: "subject" })pb"));
  std::vector<uint32_t> ids = {99};
  index.Match(Event("t", "s"), &ids);
  EXPECT_THAT(ids, ElementsAre(99, 1, 2));
}

TEST(FilterIndexTest, CandidatesAreCheckedAgainstTheirWholeFilter) {
  FilterIndex index;
  index.Add(1, ParseFilter(R"pb(all {
                                  filters { exact { attribute: "type" value: "t" } }
                                  filters { exact { attribute: "source" value: "//a" } }
                                })pb"));
  EXPECT_THAT(MatchIds(index, Event("t", "//a")), ElementsAre(1));
  EXPECT_THAT(MatchIds(index, Event("t", "//b")), IsEmpty());
}

TEST(FilterIndexTest, PrefixesAndSuffixesOfSeveralLengthsAreAllFound) {
  FilterIndex index;
  index.Add(1, ParseFilter(R"pb(prefix { attribute: "type" value: "p" })pb"));
  index.Add(2, ParseFilter(R"pb(prefix { attribute: "type" value: "pettube." })pb"));
  index.Add(3, ParseFilter(R"pb(prefix { attribute: "type" value: "pettube.media.uploaded" })pb"));
  index.Add(4,
            ParseFilter(R"pb(prefix { attribute: "type" value: "pettube.media.uploaded.v2" })pb"));
  index.Add(5, ParseFilter(R"pb(suffix { attribute: "type" value: "d" })pb"));
  index.Add(6, ParseFilter(R"pb(suffix { attribute: "type" value: ".uploaded" })pb"));
  index.Add(7,
            ParseFilter(R"pb(suffix { attribute: "type" value: "x.pettube.media.uploaded" })pb"));
  EXPECT_THAT(MatchIds(index, Event("pettube.media.uploaded", "s")), ElementsAre(1, 2, 3, 5, 6));
}

TEST(FilterIndexTest, RemovingAPrefixKeepsOthersOfTheSameLength) {
  FilterIndex index;
  index.Add(1, ParseFilter(R"pb(prefix { attribute: "type" value: "a." })pb"));
  index.Add(2, ParseFilter(R"pb(prefix { attribute: "type" value: "b/" })pb"));
  index.Add(3, ParseFilter(R"pb(suffix { attribute: "type" value: ".z" })pb"));
  index.Add(4, ParseFilter(R"pb(suffix { attribute: "type" value: "/z" })pb"));
  index.Remove(1);
  index.Remove(4);
  EXPECT_THAT(MatchIds(index, Event("a.z", "s")), ElementsAre(3));
  EXPECT_THAT(MatchIds(index, Event("b//z", "s")), ElementsAre(2));
}

TEST(FilterIndexTest, ExtensionAttributesAreIndexed) {
  FilterIndex index;
  index.Add(1, ParseFilter(R"pb(exact { attribute: "partitionkey" value: "user-7" })pb"));
  index.Add(2, ParseFilter(R"pb(prefix { attribute: "subject" value: "media/" })pb"));
  index.Add(3, ParseFilter(R"pb(prefix { attribute: "time" value: "2024-05-01T" })pb"));
  index.Add(4, ParseFilter(R"pb(exact { attribute: "size" value: "42" })pb"));
  CloudEvent event = Event("t", "s");
  auto& attributes = *event.mutable_attributes();
  attributes["partitionkey"].set_ce_string("user-7");
  attributes["subject"].set_ce_string("media/42");
  attributes["time"].mutable_ce_timestamp()->set_seconds(1714564800);  // 2024-05-01T12:00:00Z
  attributes["size"].set_ce_integer(42);
  EXPECT_THAT(MatchIds(index, event), ElementsAre(1, 2, 3, 4));
  attributes["partitionkey"].set_ce_string("user-8");
  attributes.erase("subject");
  EXPECT_THAT(MatchIds(index, event), ElementsAre(3, 4));
}

TEST(FilterIndexTest, NonIndexableFiltersStillMatch) {
  FilterIndex index;
  index.Add(1, Filter());  // match all
  index.Add(2, ParseFilter(R"pb(not { exact { attribute: "type" value: "t" } })pb"));
  index.Add(3, ParseFilter(R"pb(any {
                                  filters { exact { attribute: "type" value: "t" } }
                                  filters { not { exists: "subject" } }
                                })pb"));
  index.Add(4, ParseFilter(R"pb(exact { attribute: "type" value: "t" })pb"));
  index.Add(5, ParseFilter(R"pb(all { filters { not { exists: "source" } } })pb"));
  EXPECT_EQ(index.unindexed_size(), 4);
  EXPECT_THAT(MatchIds(index, Event("t", "s")), ElementsAre(1, 3, 4));
  EXPECT_THAT(MatchIds(index, Event("u", "s")), ElementsAre(1, 2, 3));
  EXPECT_THAT(MatchIds(index, Event("u", "")), ElementsAre(1, 2, 3, 5));
}

TEST(FilterIndexTest, AnythingButDoesNotMatchAMissingAttribute) {
  FilterIndex index;
  index.Add(1, ParseFilter(R"pb(anything_but { attribute: "subject" values: "a" })pb"));
  CloudEvent event = Event("t", "s");
  EXPECT_THAT(MatchIds(index, event), IsEmpty());
  (*event.mutable_attributes())["subject"].set_ce_string("b");
  EXPECT_THAT(MatchIds(index, event), ElementsAre(1));
  (*event.mutable_attributes())["subject"].set_ce_string("a");
  EXPECT_THAT(MatchIds(index, event), IsEmpty());
}

TEST(FilterIndexTest, AddReplacesTheSubscriptionsFilter) {
  FilterIndex index;
  index.Add(1, ParseFilter(R"pb(exact { attribute: "type" value: "a" })pb"));
  index.Add(1, ParseFilter(R"pb(prefix { attribute: "type" value: "b" })pb"));
  EXPECT_EQ(index.size(), 1);
  EXPECT_THAT(MatchIds(index, Event("a", "s")), IsEmpty());
  EXPECT_THAT(MatchIds(index, Event("bb", "s")), ElementsAre(1));
  // Indexed -> unindexed -> indexed.
  index.Add(1, ParseFilter(R"pb(not { exists: "subject" })pb"));
  EXPECT_EQ(index.unindexed_size(), 1);
  EXPECT_THAT(MatchIds(index, Event("a", "s")), ElementsAre(1));
  index.Add(1, ParseFilter(R"pb(exact { attribute: "type" value: "a" })pb"));
  EXPECT_EQ(index.unindexed_size(), 0);
  EXPECT_THAT(MatchIds(index, Event("a", "s")), ElementsAre(1));
  EXPECT_THAT(MatchIds(index, Event("bb", "s")), IsEmpty());
}

TEST(FilterIndexTest, RemoveForgetsTheSubscription) {
  FilterIndex index;
  index.Add(1, ParseFilter(R"pb(exact { attribute: "type" value: "a" })pb"));
  index.Add(2, ParseFilter(R"pb(exact { attribute: "type" value: "a" })pb"));
  index.Add(3, ParseFilter(R"pb(prefix { attribute: "type" value: "a" })pb"));
  index.Add(4, Filter());
  index.Remove(2);
  index.Remove(4);
  index.Remove(99);  // unknown: no-op
  EXPECT_EQ(index.size(), 2);
  EXPECT_THAT(MatchIds(index, Event("a", "s")), ElementsAre(1, 3));
  index.Remove(1);
  index.Remove(3);
  EXPECT_EQ(index.size(), 0);
  EXPECT_THAT(MatchIds(index, Event("a", "s")), IsEmpty());
}

TEST(FilterIndexTest, MatchDoesNotAllocateForStringAttributes) {
  FilterIndex index;
  index.Add(1, ParseFilter(R"pb(exact { attribute: "type" value: "pettube.media.uploaded" })pb"));
  index.Add(2, ParseFilter(R"pb(prefix { attribute: "subject" value: "media/" })pb"));
  index.Add(3, ParseFilter(R"pb(suffix { attribute: "source" value: "/upload" })pb"));
  index.Add(4, ParseFilter(R"pb(all {
                                  filters { exact { attribute: "partitionkey" value: "user-7" } }
                                  filters { exists: "subject" }
                                })pb"));
  index.Add(5, ParseFilter(R"pb(not { exact { attribute: "partitionkey" value: "user-8" } })pb"));
  CloudEvent event = Event("pettube.media.uploaded", "//pettube/upload");
  (*event.mutable_attributes())["subject"].set_ce_string("media/a-rather-long-subject-value");
  (*event.mutable_attributes())["partitionkey"].set_ce_string("user-7");
  std::vector<uint32_t> ids;
  index.Match(event, &ids);  // grows `ids` to its working size
  ids.clear();

  count_allocations = true;
  index.Match(event, &ids);
  count_allocations = false;
  EXPECT_EQ(allocations, 0);
  EXPECT_THAT(ids, ElementsAre(1, 2, 3, 4, 5));

  // The counter works: an indexed timestamp is formatted to be compared.
  index.Add(6, ParseFilter(R"pb(prefix { attribute: "time" value: "2024-" })pb"));
  (*event.mutable_attributes())["time"].mutable_ce_timestamp()->set_seconds(1714564800);
  ids.clear();
  count_allocations = true;
  index.Match(event, &ids);
  count_allocations = false;
  EXPECT_GT(allocations, 0);
  EXPECT_THAT(ids, ElementsAre(1, 2, 3, 4, 5, 6));
}

// Random filters and events over a small vocabulary, so that every kind of
// filter matches some events and misses others.
class RandomCorpus {
 public:
  explicit RandomCorpus(uint32_t seed) : rng_(seed) {}

  Filter RandomFilter(int depth = 1) {
    Filter filter;
    const int kind = Uniform(0, depth >= 4 ? 4 : 7);
    switch (kind) {
      case 0:
        SetMatch(filter.mutable_exact(), /*cut=*/false, /*from_end=*/false);
        break;
      case 1:
        SetMatch(filter.mutable_prefix(), /*cut=*/true, /*from_end=*/false);
        break;
      case 2:
        SetMatch(filter.mutable_suffix(), /*cut=*/true, /*from_end=*/true);
        break;
      case 3:
        filter.set_exists(RandomAttribute());
        break;
      case 4: {
        auto* anything_but = filter.mutable_anything_but();
        const std::string attribute = RandomAttribute();
        anything_but->set_attribute(attribute);
        for (int i = Uniform(1, 3); i > 0; --i) anything_but->add_values(RandomValue(attribute));
        break;
      }
      case 5:
      case 6: {
        auto* list = kind == 5 ? filter.mutable_all() : filter.mutable_any();
        for (int i = Uniform(1, 3); i > 0; --i) *list->add_filters() = RandomFilter(depth + 1);
        break;
      }
      case 7:
        if (depth == 1 && Uniform(0, 9) == 0) break;  // match all, now and then
        *filter.mutable_not_() = RandomFilter(depth + 1);
        break;
      default:
        break;
    }
    return filter;
  }

  CloudEvent RandomEvent() {
    CloudEvent event;
    event.set_id(TypedValue("id"));
    event.set_source(TypedValue("source"));
    event.set_spec_version(TypedValue("specversion"));
    event.set_type(TypedValue("type"));
    auto& attributes = *event.mutable_attributes();
    for (const char* name : {"subject", "partitionkey"}) {
      if (Uniform(0, 2) != 0) attributes[name].set_ce_string(RandomValue(name));
    }
    if (Uniform(0, 1) == 0) attributes["size"].set_ce_integer(Uniform(0, 3) * 10);
    if (Uniform(0, 1) == 0) attributes["retry"].set_ce_boolean(Uniform(0, 1) == 0);
    if (Uniform(0, 1) == 0) {
      attributes["time"].mutable_ce_timestamp()->set_seconds(1714564800 + Uniform(0, 2) * 86400);
    }
    if (Uniform(0, 9) == 0) attributes["type"].set_ce_string("forged");  // must be ignored
    if (Uniform(0, 9) == 0) attributes["dataschema"];                    // no value: absent
    return event;
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  // Occasionally empty, i.e. absent.
  std::string TypedValue(const std::string& attribute) {
    return Uniform(0, 19) == 0 ? "" : RandomValue(attribute);
  }

  std::string RandomAttribute() {
    static const char* const kNames[] = {"type",         "type",        "source",  "subject",
                                         "partitionkey", "id",          "size",    "retry",
                                         "time",         "specversion", "unknown", "dataschema"};
    return kNames[Uniform(0, std::size(kNames) - 1)];
  }

  std::string RandomValue(const std::string& attribute) {
    if (attribute == "type") {
      static const char* const kTypes[] = {"pettube.media.uploaded", "pettube.media.deleted",
                                           "pettube.user.created", "pettube.media", "forged"};
      return kTypes[Uniform(0, std::size(kTypes) - 1)];
    }
    if (attribute == "source") {
      static const char* const kSources[] = {"//pettube/upload", "//pettube/auth",
                                             "//pettube/transcode", "//other/upload"};
      return kSources[Uniform(0, std::size(kSources) - 1)];
    }
    if (attribute == "size") return absl::StrCat(Uniform(0, 3) * 10);
    if (attribute == "retry") return Uniform(0, 1) == 0 ? "true" : "false";
    if (attribute == "time") {
      return absl::StrCat("2024-05-0", Uniform(1, 3), "T12:00:00Z");
    }
    if (attribute == "specversion") return Uniform(0, 3) == 0 ? "0.3" : "1.0";
    return absl::StrCat(attribute.substr(0, 2), "-", Uniform(0, 4), Uniform(0, 1) == 0 ? "a" : "");
  }

  void SetMatch(v1::AttributeMatch* match, bool cut, bool from_end) {
    match->set_attribute(RandomAttribute());
    std::string value = RandomValue(match->attribute());
    if (cut) {
      const size_t length = Uniform(1, value.size());
      value = from_end ? value.substr(value.size() - length) : value.substr(0, length);
    }
    match->set_value(value);
  }

  std::mt19937 rng_;
};

TEST(FilterIndexTest, MatchAgreesWithEvaluatingEveryFilter) {
  RandomCorpus corpus(/*seed=*/20240501);
  constexpr uint32_t kFilters = 2000;
  constexpr int kEvents = 2000;
  std::vector<Filter> filters(kFilters);
  FilterIndex index;
  for (uint32_t id = 0; id < kFilters; ++id) {
    filters[id] = corpus.RandomFilter();
    ASSERT_TRUE(ValidateFilter(filters[id]).ok()) << filters[id].DebugString();
    index.Add(id, filters[id]);
  }
  // Churn: remove some, replace some, so removal paths are exercised too.
  std::vector<bool> present(kFilters, true);
  for (uint32_t id = 0; id < kFilters; id += 7) {
    index.Remove(id);
    present[id] = false;
  }
  for (uint32_t id = 3; id < kFilters; id += 11) {
    filters[id] = corpus.RandomFilter();
    index.Add(id, filters[id]);
    present[id] = true;
  }
  size_t expected_size = 0;
  for (bool p : present) expected_size += p;
  ASSERT_EQ(index.size(), expected_size);
  EXPECT_GT(index.unindexed_size(), 0);
  EXPECT_LT(index.unindexed_size(), index.size() / 2);

  size_t total_matches = 0;
  std::vector<uint32_t> ids;
  for (int i = 0; i < kEvents; ++i) {
    const CloudEvent event = corpus.RandomEvent();
    std::vector<uint32_t> expected;
    for (uint32_t id = 0; id < kFilters; ++id) {
      if (present[id] && Matches(filters[id], event)) expected.push_back(id);
    }
    ids.clear();
    index.Match(event, &ids);
    ASSERT_EQ(ids, expected) << "event " << i << ": " << event.DebugString();
    total_matches += expected.size();
  }
  // The corpus is neither all-match nor no-match, or the test proves little.
  EXPECT_GT(total_matches, kEvents * 10);
  EXPECT_LT(total_matches, kEvents * size_t{kFilters} / 2);
}

}  // namespace
}  // namespace pettube::broker
