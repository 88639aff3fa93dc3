#include "libs/auth/base64url.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pettube::auth {
namespace {

MATCHER_P(IsInvalidArgumentWith, substring, "") {
  *result_listener << arg.status();
  return absl::IsInvalidArgument(arg.status()) &&
         absl::StrContains(arg.status().message(), substring);
}

TEST(Base64UrlTest, EncodesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
}

TEST(Base64UrlTest, UsesTheUrlSafeAlphabet) {
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(*Base64UrlDecode("-_8"), "\xfb\xff");
}

TEST(Base64UrlTest, DecodesRfc4648Vectors) {
  EXPECT_EQ(*Base64UrlDecode(""), "");
  EXPECT_EQ(*Base64UrlDecode("Zg"), "f");
  EXPECT_EQ(*Base64UrlDecode("Zm8"), "fo");
  EXPECT_EQ(*Base64UrlDecode("Zm9v"), "foo");
  EXPECT_EQ(*Base64UrlDecode("Zm9vYmFy"), "foobar");
}

TEST(Base64UrlTest, EveryByteStringRoundTrips) {
  for (size_t length = 0; length < 70; ++length) {
    std::string data;
    for (size_t i = 0; i < length; ++i) data.push_back(static_cast<char>((i * 37 + length) & 0xFF));
    absl::StatusOr<std::string> decoded = Base64UrlDecode(Base64UrlEncode(data));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, data) << "length " << length;
  }
}

TEST(Base64UrlTest, PaddingIsRejected) {
  EXPECT_THAT(Base64UrlDecode("Zg=="), IsInvalidArgumentWith("padding '=' at offset 2"));
  EXPECT_THAT(Base64UrlDecode("Zm8="), IsInvalidArgumentWith("padding"));
}

TEST(Base64UrlTest, StandardAlphabetCharactersAreRejected) {
  EXPECT_THAT(Base64UrlDecode("Zm9+"), IsInvalidArgumentWith("invalid character '+' at offset 3"));
  EXPECT_THAT(Base64UrlDecode("Zm/v"), IsInvalidArgumentWith("invalid character '/'"));
}

TEST(Base64UrlTest, WhitespaceAndControlBytesAreRejected) {
  EXPECT_THAT(Base64UrlDecode("Zm 9"), IsInvalidArgumentWith("invalid byte 0x20 at offset 2"));
  EXPECT_THAT(Base64UrlDecode("Zm9\n"), IsInvalidArgumentWith("invalid byte 0x0a at offset 3"));
  EXPECT_THAT(Base64UrlDecode(std::string("Zm\0v", 4)), IsInvalidArgumentWith("0x00"));
}

TEST(Base64UrlTest, ImpossibleLengthIsRejected) {
  EXPECT_THAT(Base64UrlDecode("Z"), IsInvalidArgumentWith("length 1 is impossible"));
  EXPECT_THAT(Base64UrlDecode("Zm9vY"), IsInvalidArgumentWith("length 5 is impossible"));
}

TEST(Base64UrlTest, NonZeroUnusedTrailingBitsAreRejected) {
  // "Zg" is the canonical "f"; "Zh" differs only in bits no byte uses.
  EXPECT_THAT(Base64UrlDecode("Zh"), IsInvalidArgumentWith("non-canonical"));
  EXPECT_THAT(Base64UrlDecode("Zm9"), IsInvalidArgumentWith("non-canonical"));
}

}  // namespace
}  // namespace pettube::auth
