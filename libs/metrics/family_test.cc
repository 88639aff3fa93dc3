#include "libs/metrics/family.h"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace pettube::metrics {
namespace {

TEST(FamilyTest, SameLabelsReturnTheSameInstance) {
  Family<Counter> family("requests_total", "Requests.", {});
  Counter& first = family.Add({{"code", "200"}, {"method", "GET"}});
  Counter& again = family.Add({{"method", "GET"}, {"code", "200"}});
  EXPECT_EQ(&first, &again);
}

TEST(FamilyTest, DifferentLabelsReturnDifferentInstances) {
  Family<Counter> family("requests_total", "Requests.", {});
  Counter& ok = family.Add({{"code", "200"}});
  Counter& missing = family.Add({{"code", "404"}});
  EXPECT_NE(&ok, &missing);
}

TEST(FamilyTest, SecondAddOfAHistogramKeepsTheFirstBuckets) {
  Family<Histogram> family("latency_seconds", "Latency.", {});
  Histogram& first = family.Add({}, Histogram::BucketBoundaries{1, 2});
  Histogram& again = family.Add({}, Histogram::BucketBoundaries{5});
  EXPECT_EQ(&first, &again);
  EXPECT_EQ(again.Snapshot().bucket_boundaries.size(), 2);
}

TEST(FamilyTest, ConcurrentAddsWithTheSameLabelsYieldOneInstance) {
  Family<Counter> family("requests_total", "Requests.", {});
  absl::Mutex mu;
  std::set<Counter*> seen;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        Counter& counter = family.Add({{"code", "200"}});
        counter.Increment();
        absl::MutexLock lock(&mu);
        seen.insert(&counter);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_EQ(seen.size(), 1);
  EXPECT_EQ((*seen.begin())->Value(), 4000);
}

TEST(FamilyTest, MetricsSerializeInLabelOrderWhateverTheAddOrder) {
  Family<Gauge> family("queue_depth", "", {});
  family.Add({{"queue", "b"}}).Set(2);
  family.Add({{"queue", "a"}}).Set(1);
  std::string text;
  family.AppendText(&text);
  EXPECT_EQ(text,
            "# TYPE queue_depth gauge\n"
            "queue_depth{queue=\"a\"} 1\n"
            "queue_depth{queue=\"b\"} 2\n");
}

TEST(FamilyTest, RemovedMetricIsNoLongerSerialized) {
  Family<Gauge> family("backlog", "Backlog.", {});
  family.Add({{"subscription", "keep"}}).Set(1);
  Gauge& dropped = family.Add({{"subscription", "drop"}});
  family.Remove(&dropped);
  std::string text;
  family.AppendText(&text);
  EXPECT_EQ(text,
            "# HELP backlog Backlog.\n"
            "# TYPE backlog gauge\n"
            "backlog{subscription=\"keep\"} 1\n");
}

TEST(FamilyTest, RemoveOfAnUnknownMetricIsANoOp) {
  Family<Counter> family("requests_total", "Requests.", {});
  family.Add({}).Increment();
  Counter stranger;
  family.Remove(&stranger);
  std::string text;
  family.AppendText(&text);
  EXPECT_NE(text.find("requests_total 1\n"), std::string::npos);
}

TEST(FamilyTest, AFamilyWithoutMetricsSerializesToNothing) {
  Family<Counter> family("requests_total", "Requests.", {});
  std::string text;
  family.AppendText(&text);
  EXPECT_EQ(text, "");
}

TEST(FamilyDeathTest, InvalidLabelNameAbortsWithAMessage) {
  Family<Counter> family("requests_total", "Requests.", {});
  EXPECT_DEATH(family.Add({{"bad-name", "x"}}),
               "label name \"bad-name\" is invalid");
}

TEST(FamilyDeathTest, LabelAlsoAmongConstantLabelsAbortsWithAMessage) {
  Family<Counter> family("requests_total", "Requests.",
                         {{"service", "broker"}});
  EXPECT_DEATH(family.Add({{"service", "upload"}}), "already a constant label");
}

TEST(FamilyDeathTest, LeLabelOnAHistogramAbortsWithAMessage) {
  Family<Histogram> family("latency_seconds", "Latency.", {});
  EXPECT_DEATH(family.Add({{"le", "1"}}, Histogram::BucketBoundaries{1}),
               "reserved for histogram buckets");
}

}  // namespace
}  // namespace pettube::metrics
