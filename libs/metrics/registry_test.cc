#include "libs/metrics/registry.h"

#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pettube::metrics {
namespace {

using ::testing::HasSubstr;

TEST(RegistryTest, SerializesACounterWithHelpAndType) {
  Registry registry;
  auto& family = BuildCounter()
                     .Name("pettube_requests_total")
                     .Help("Requests served.")
                     .Register(registry);
  family.Add({{"code", "200"}}).Increment(3);
  EXPECT_EQ(registry.Serialize(),
            "# HELP pettube_requests_total Requests served.\n"
            "# TYPE pettube_requests_total counter\n"
            "pettube_requests_total{code=\"200\"} 3\n");
}

TEST(RegistryTest, SerializesAGaugeWithoutLabels) {
  Registry registry;
  BuildGauge()
      .Name("pettube_in_flight")
      .Help("In flight.")
      .Register(registry)
      .Add({})
      .Set(-2.5);
  EXPECT_EQ(registry.Serialize(),
            "# HELP pettube_in_flight In flight.\n"
            "# TYPE pettube_in_flight gauge\n"
            "pettube_in_flight -2.5\n");
}

TEST(RegistryTest, SerializesHistogramBucketsCumulativelyWithInfSumAndCount) {
  Registry registry;
  auto& family = BuildHistogram()
                     .Name("pettube_latency_seconds")
                     .Help("Latency.")
                     .Register(registry);
  Histogram& histogram = family.Add({{"method", "Get"}},
                                    Histogram::BucketBoundaries{0.005, 0.1, 1});
  histogram.Observe(0.005);  // On a boundary: counts in le="0.005".
  histogram.Observe(0.05);
  histogram.Observe(7);  // Only in le="+Inf".
  EXPECT_EQ(registry.Serialize(),
            "# HELP pettube_latency_seconds Latency.\n"
            "# TYPE pettube_latency_seconds histogram\n"
            "pettube_latency_seconds_bucket{method=\"Get\",le=\"0.005\"} 1\n"
            "pettube_latency_seconds_bucket{method=\"Get\",le=\"0.1\"} 2\n"
            "pettube_latency_seconds_bucket{method=\"Get\",le=\"1\"} 2\n"
            "pettube_latency_seconds_bucket{method=\"Get\",le=\"+Inf\"} 3\n"
            "pettube_latency_seconds_sum{method=\"Get\"} 7.055\n"
            "pettube_latency_seconds_count{method=\"Get\"} 3\n");
}

TEST(RegistryTest, HistogramWithoutLabelsHasOnlyTheLeLabel) {
  Registry registry;
  BuildHistogram()
      .Name("size_bytes")
      .Register(registry)
      .Add({}, Histogram::BucketBoundaries{1024})
      .Observe(10);
  EXPECT_EQ(registry.Serialize(),
            "# TYPE size_bytes histogram\n"
            "size_bytes_bucket{le=\"1024\"} 1\n"
            "size_bytes_bucket{le=\"+Inf\"} 1\n"
            "size_bytes_sum 10\n"
            "size_bytes_count 1\n");
}

TEST(RegistryTest, FamiliesAreSortedByNameWithHelpAndTypeOnceEach) {
  Registry registry;
  auto& zebra = BuildGauge().Name("zebra").Help("Z.").Register(registry);
  auto& apple =
      BuildCounter().Name("apple_total").Help("A.").Register(registry);
  zebra.Add({{"k", "2"}}).Set(2);
  zebra.Add({{"k", "1"}}).Set(1);
  apple.Add({}).Increment();
  EXPECT_EQ(registry.Serialize(),
            "# HELP apple_total A.\n"
            "# TYPE apple_total counter\n"
            "apple_total 1\n"
            "# HELP zebra Z.\n"
            "# TYPE zebra gauge\n"
            "zebra{k=\"1\"} 1\n"
            "zebra{k=\"2\"} 2\n");
}

TEST(RegistryTest, LabelValuesAreEscaped) {
  Registry registry;
  BuildCounter()
      .Name("odd_total")
      .Register(registry)
      .Add({{"path", "C:\\dir\n\"quoted\""}})
      .Increment();
  EXPECT_THAT(registry.Serialize(),
              HasSubstr("odd_total{path=\"C:\\\\dir\\n\\\"quoted\\\"\"} 1\n"));
}

TEST(RegistryTest, HelpTextIsEscaped) {
  Registry registry;
  BuildCounter()
      .Name("odd_total")
      .Help("line one\nback\\slash \"quotes stay\"")
      .Register(registry)
      .Add({});
  EXPECT_THAT(registry.Serialize(),
              HasSubstr("# HELP odd_total line one\\nback\\\\slash "
                        "\"quotes stay\"\n"));
}

TEST(RegistryTest, ConstantLabelsAreMergedIntoEveryMetricInNameOrder) {
  Registry registry;
  auto& family = BuildCounter()
                     .Name("events_total")
                     .Labels({{"service", "broker"}})
                     .Register(registry);
  family.Add({{"type", "x"}, {"area", "y"}}).Increment();
  EXPECT_THAT(registry.Serialize(),
              HasSubstr("events_total{area=\"y\",service=\"broker\","
                        "type=\"x\"} 1\n"));
}

TEST(RegistryTest, SpecialValuesUsePrometheusSpelling) {
  Registry registry;
  auto& family = BuildGauge().Name("g").Register(registry);
  family.Add({{"v", "inf"}}).Set(std::numeric_limits<double>::infinity());
  family.Add({{"v", "ninf"}}).Set(-std::numeric_limits<double>::infinity());
  family.Add({{"v", "nan"}}).Set(std::numeric_limits<double>::quiet_NaN());
  family.Add({{"v", "big"}}).Set(1e6);
  const std::string text = registry.Serialize();
  EXPECT_THAT(text, HasSubstr("g{v=\"inf\"} +Inf\n"));
  EXPECT_THAT(text, HasSubstr("g{v=\"ninf\"} -Inf\n"));
  EXPECT_THAT(text, HasSubstr("g{v=\"nan\"} NaN\n"));
  EXPECT_THAT(text, HasSubstr("g{v=\"big\"} 1000000\n"));
}

TEST(RegistryTest, RegisteringTheSameNameAndTypeAgainReturnsTheExistingFamily) {
  Registry registry;
  auto& first =
      BuildCounter().Name("x_total").Help("First.").Register(registry);
  auto& second =
      BuildCounter().Name("x_total").Help("Second.").Register(registry);
  EXPECT_EQ(&first, &second);
  first.Add({}).Increment();
  EXPECT_THAT(registry.Serialize(), HasSubstr("# HELP x_total First.\n"));
}

TEST(RegistryTest, CollectCallbacksRunBeforeEachSerialize) {
  Registry registry;
  Gauge& backlog = BuildGauge().Name("backlog").Register(registry).Add({});
  int scrapes = 0;
  registry.AddCollectCallback([&] { backlog.Set(++scrapes * 10); });
  EXPECT_THAT(registry.Serialize(), HasSubstr("backlog 10\n"));
  EXPECT_THAT(registry.Serialize(), HasSubstr("backlog 20\n"));
}

TEST(RegistryTest, CollectCallbackMayRegisterAndAddMetrics) {
  Registry registry;
  registry.AddCollectCallback([&registry] {
    BuildGauge().Name("late").Register(registry).Add({{"s", "a"}}).Set(1);
  });
  EXPECT_THAT(registry.Serialize(), HasSubstr("late{s=\"a\"} 1\n"));
}

TEST(RegistryTest, EmptyRegistrySerializesToNothing) {
  Registry registry;
  BuildCounter().Name("unused_total").Register(registry);
  EXPECT_EQ(registry.Serialize(), "");
}

TEST(RegistryDeathTest, InvalidMetricNameAbortsWithAMessage) {
  Registry registry;
  EXPECT_DEATH(BuildCounter().Name("1bad").Register(registry),
               "metric name \"1bad\" is invalid");
  EXPECT_DEATH(BuildCounter().Name("").Register(registry),
               "metric name \"\" is invalid");
  EXPECT_DEATH(BuildCounter().Name("__reserved").Register(registry),
               "not start with __");
}

TEST(RegistryDeathTest, InvalidConstantLabelNameAbortsWithAMessage) {
  Registry registry;
  EXPECT_DEATH(
      BuildCounter().Name("x_total").Labels({{"a-b", "c"}}).Register(registry),
      "constant label name \"a-b\" is invalid");
}

TEST(RegistryDeathTest, SameNameWithAnotherTypeAbortsWithAMessage) {
  Registry registry;
  BuildCounter().Name("x").Register(registry);
  EXPECT_DEATH(BuildGauge().Name("x").Register(registry),
               "already registered as a counter, not a gauge");
}

TEST(RegistryDeathTest, SameNameWithOtherConstantLabelsAbortsWithAMessage) {
  Registry registry;
  BuildCounter().Name("x_total").Labels({{"a", "1"}}).Register(registry);
  EXPECT_DEATH(
      BuildCounter().Name("x_total").Labels({{"a", "2"}}).Register(registry),
      "other constant labels");
}

}  // namespace
}  // namespace pettube::metrics
