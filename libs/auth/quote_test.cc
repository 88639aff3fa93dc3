#include "libs/auth/quote.h"

#include <string>

#include "gtest/gtest.h"

namespace pettube::auth {
namespace {

TEST(QuoteTest, WrapsPlainTextInDoubleQuotes) { EXPECT_EQ(Quote("k1"), "\"k1\""); }

TEST(QuoteTest, EscapesQuotesAndControlBytesSoTheyCannotForgeLogFields) {
  EXPECT_EQ(Quote("a\"b\nc"), "\"a\\\"b\\nc\"");
  EXPECT_EQ(Quote(std::string("\x01\xff", 2)), "\"\\x01\\xff\"");
}

TEST(QuoteTest, TruncatesLongInputAfter64Bytes) {
  const std::string quoted = Quote(std::string(1000, 'a'));
  EXPECT_EQ(quoted, "\"" + std::string(64, 'a') + "...\"");
}

}  // namespace
}  // namespace pettube::auth
