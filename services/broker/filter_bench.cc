// FilterIndex::Match per event with few vs many subscriptions loaded. Routing
// must not slow down as subscriptions are added, except by the filters that
// cannot be indexed (evaluated for every event) and by the matches returned.
//
//   bazel run -c opt //services/broker:filter_bench
//
// Arguments: subscriptions, unindexable filters per mille.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "services/broker/filter.h"
#include "services/broker/filter_index.h"

namespace pettube::broker {
namespace {

using ::io::cloudevents::v1::CloudEvent;
using ::pettube::broker::v1::Filter;

std::string TypeOf(int i) { return absl::StrCat("pettube.sub", i, ".event"); }
std::string SourceOf(int i) { return absl::StrCat("//pettube/svc", i % 50); }

void SetMatch(v1::AttributeMatch* match, const std::string& attribute, const std::string& value) {
  match->set_attribute(attribute);
  match->set_value(value);
}

// Subscription i's filter: mostly `type == pettube.sub<i>.event`, some
// prefix/suffix/all combinations, and `unindexed_per_mille` that the index
// cannot narrow (negations), spread evenly.
Filter SubscriptionFilter(int i, int unindexed_per_mille) {
  Filter filter;
  if (unindexed_per_mille > 0 &&
      i % (1000 / unindexed_per_mille) == 1000 / unindexed_per_mille - 1) {
    switch ((i / 100) % 3) {
      case 0:  // foreign events only: matches none here
        SetMatch(filter.mutable_not_()->mutable_prefix(), "type", "pettube.");
        break;
      case 1:  // everything except one service's events
        SetMatch(filter.mutable_not_()->mutable_exact(), "source", SourceOf(i));
        break;
      default: {  // its type, or unpartitioned events
        auto* any = filter.mutable_any();
        SetMatch(any->add_filters()->mutable_exact(), "type", TypeOf(i));
        any->add_filters()->mutable_not_()->set_exists("partitionkey");
        break;
      }
    }
    return filter;
  }
  switch (i % 10) {
    case 1:
      SetMatch(filter.mutable_prefix(), "type", absl::StrCat("pettube.sub", i, "."));
      break;
    case 2: {
      auto* all = filter.mutable_all();
      SetMatch(all->add_filters()->mutable_suffix(), "source", absl::StrCat("/svc", i % 50));
      SetMatch(all->add_filters()->mutable_exact(), "type", TypeOf(i));
      break;
    }
    case 3: {
      auto* all = filter.mutable_all();
      SetMatch(all->add_filters()->mutable_exact(), "type", TypeOf(i));
      SetMatch(all->add_filters()->mutable_prefix(), "subject", "media/");
      break;
    }
    default:
      SetMatch(filter.mutable_exact(), "type", TypeOf(i));
      break;
  }
  return filter;
}

// Events addressed to the subscriptions at random, most with a subject and
// a partition key.
std::vector<CloudEvent> Events(int subscriptions) {
  std::mt19937 rng(42);
  std::vector<CloudEvent> events(1024);
  for (size_t k = 0; k < events.size(); ++k) {
    const int i = std::uniform_int_distribution<int>(0, subscriptions - 1)(rng);
    CloudEvent& event = events[k];
    event.set_id(absl::StrCat("e-", k));
    event.set_source(SourceOf(i));
    event.set_spec_version("1.0");
    event.set_type(TypeOf(i));
    auto& attributes = *event.mutable_attributes();
    attributes["subject"].set_ce_string(absl::StrCat(k % 2 == 0 ? "media/" : "user/", k));
    if (k % 10 != 0) attributes["partitionkey"].set_ce_string(absl::StrCat("user-", k % 97));
  }
  return events;
}

void BM_Match(benchmark::State& state) {
  const int subscriptions = static_cast<int>(state.range(0));
  const int unindexed_per_mille = static_cast<int>(state.range(1));
  FilterIndex index;
  for (int i = 0; i < subscriptions; ++i) {
    index.Add(i, SubscriptionFilter(i, unindexed_per_mille));
  }
  const std::vector<CloudEvent> events = Events(subscriptions);
  std::vector<uint32_t> ids;
  ids.reserve(subscriptions);
  size_t next = 0;
  int64_t matches = 0;
  for (auto _ : state) {
    ids.clear();
    index.Match(events[next++ % events.size()], &ids);
    matches += static_cast<int64_t>(ids.size());
    benchmark::DoNotOptimize(ids.data());
  }
  state.counters["matches/event"] =
      benchmark::Counter(static_cast<double>(matches), benchmark::Counter::kAvgIterations);
  state.counters["unindexed"] = static_cast<double>(index.unindexed_size());
}

BENCHMARK(BM_Match)
    ->ArgNames({"subs", "unindexed_permille"})
    ->Args({10, 10})
    ->Args({10000, 10})
    ->Args({10000, 0});

}  // namespace
}  // namespace pettube::broker

BENCHMARK_MAIN();
