#include "libs/metrics/text_format.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace pettube::metrics::internal {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(FormatValueTest, SpecialValuesUsePrometheusSpelling) {
  EXPECT_EQ(FormatValue(kInf), "+Inf");
  EXPECT_EQ(FormatValue(-kInf), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(FormatValueTest, IntegralValuesPrintWithoutExponentOrFraction) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-7), "-7");
  EXPECT_EQ(FormatValue(1234567), "1234567");
  EXPECT_EQ(FormatValue(123456789012345), "123456789012345");
}

TEST(FormatValueTest, FractionsPrintShortestRoundTrip) {
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.0005), "0.0005");
  EXPECT_EQ(FormatValue(2.5), "2.5");
  EXPECT_EQ(FormatValue(0.1 + 0.2), "0.30000000000000004");
}

TEST(FormatValueTest, HugeAndTinyValuesUseAnExponent) {
  EXPECT_EQ(FormatValue(1e15), "1e+15");
  EXPECT_EQ(FormatValue(1.5e20), "1.5e+20");
  EXPECT_EQ(FormatValue(1e-7), "1e-07");
}

TEST(EscapeLabelValueTest, EscapesBackslashQuoteAndNewline) {
  EXPECT_EQ(EscapeLabelValue(R"(a\b"c)"
                             "\n"
                             "d"),
            R"(a\\b\"c\nd)");
}

TEST(EscapeLabelValueTest, LeavesOtherCharactersAlone) {
  EXPECT_EQ(EscapeLabelValue("tab\there {}=, caf\xc3\xa9"),
            "tab\there {}=, caf\xc3\xa9");
}

TEST(EscapeHelpTest, EscapesBackslashAndNewlineButNotQuotes) {
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\nbye"), R"(say "hi"\\\nbye)");
}

TEST(RenderLabelsTest, MergesConstantAndMetricLabelsSortedByName) {
  EXPECT_EQ(RenderLabels({{"service", "broker"}}, {{"code", "200"}}),
            R"(code="200",service="broker")");
}

TEST(RenderLabelsTest, NoLabelsRenderEmpty) {
  EXPECT_EQ(RenderLabels({}, {}), "");
}

}  // namespace
}  // namespace pettube::metrics::internal
