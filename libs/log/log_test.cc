#include "libs/log/log.h"

#include "gtest/gtest.h"

namespace pettube::log {
namespace {

TEST(LogTest, LineHasLevelEventAndFields) {
  const std::string line =
      FormatLine(Level::kInfo, "rpc.done", {{"method", "/a.B/C"}, {"code", 0}});
  EXPECT_NE(line.find("level=info event=rpc.done method=/a.B/C code=0\n"), std::string::npos)
      << line;
  EXPECT_EQ(line.rfind("ts=", 0), 0u) << line;
}

TEST(LogTest, ValuesWithSpacesQuotesOrNewlinesAreQuotedAndEscaped) {
  const std::string line = FormatLine(Level::kError, "x", {{"msg", "a b \"c\"\nd"}});
  EXPECT_NE(line.find(R"(msg="a b \"c\"\nd")"), std::string::npos) << line;
  // Exactly one line, however hostile the value.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(LogTest, EmptyValueIsQuoted) {
  EXPECT_NE(FormatLine(Level::kInfo, "x", {{"k", ""}}).find("k=\"\""), std::string::npos);
}

TEST(LogTest, StatusFieldCarriesCodeAndMessage) {
  const std::string line =
      FormatLine(Level::kWarning, "x", {{"code", absl::NotFoundError("no such thing")}});
  EXPECT_NE(line.find(R"(code=NOT_FOUND error="no such thing")"), std::string::npos) << line;
}

TEST(LogTest, ParseLevelAcceptsKnownNamesAndRejectsOthers) {
  EXPECT_EQ(*ParseLevel("DEBUG"), Level::kDebug);
  EXPECT_EQ(*ParseLevel("warn"), Level::kWarning);
  const auto bad = ParseLevel("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("loud"), absl::string_view::npos);
}

TEST(LogTest, LevelsBelowMinimumAreDisabled) {
  SetMinLevel(Level::kWarning);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kError));
  SetMinLevel(Level::kInfo);
}

TEST(LogTest, RequestIdsAre32HexDigitsAndDiffer) {
  const std::string a = NewRequestId(), b = NewRequestId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace pettube::log
