#include "libs/metrics/labels.h"

#include "gtest/gtest.h"

namespace pettube::metrics {
namespace {

TEST(IsValidMetricNameTest, AcceptsPrometheusMetricNames) {
  EXPECT_TRUE(IsValidMetricName("http_requests_total"));
  EXPECT_TRUE(IsValidMetricName("_private"));
  EXPECT_TRUE(IsValidMetricName("job:rate5m"));
  EXPECT_TRUE(IsValidMetricName(":colon_first"));
  EXPECT_TRUE(IsValidMetricName("a1"));
}

TEST(IsValidMetricNameTest, RejectsEmptyDigitFirstPunctuationAndReserved) {
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("1st"));
  EXPECT_FALSE(IsValidMetricName("with-dash"));
  EXPECT_FALSE(IsValidMetricName("with space"));
  EXPECT_FALSE(IsValidMetricName("caf\xc3\xa9"));
  EXPECT_FALSE(IsValidMetricName("__reserved"));
}

TEST(IsValidLabelNameTest, AcceptsPrometheusLabelNames) {
  EXPECT_TRUE(IsValidLabelName("code"));
  EXPECT_TRUE(IsValidLabelName("_x"));
  EXPECT_TRUE(IsValidLabelName("a_1"));
}

TEST(IsValidLabelNameTest, RejectsColonsDigitFirstAndReserved) {
  EXPECT_FALSE(IsValidLabelName(""));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("9lives"));
  EXPECT_FALSE(IsValidLabelName("__name__"));
}

}  // namespace
}  // namespace pettube::metrics
