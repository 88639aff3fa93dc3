#include "libs/auth/openssl_util.h"

#include <openssl/err.h>

#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace pettube::auth::internal {
namespace {

std::string JoseWith(unsigned char r_last, unsigned char s_last) {
  std::string jose(64, '\0');
  jose[31] = static_cast<char>(r_last);
  jose[63] = static_cast<char>(s_last);
  return jose;
}

TEST(EcdsaSignatureTest, JoseRoundTripsThroughDer) {
  std::string jose;
  for (int i = 0; i < 64; ++i) jose.push_back(static_cast<char>(0x80 + i));
  absl::StatusOr<std::string> der = EcdsaJoseToDer(jose);
  ASSERT_TRUE(der.ok()) << der.status();
  EXPECT_EQ(static_cast<unsigned char>((*der)[0]), 0x30);  // DER SEQUENCE
  absl::StatusOr<std::string> back = EcdsaDerToJose(*der);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, jose);
}

TEST(EcdsaSignatureTest, SmallScalarsAreLeftPaddedToThirtyTwoBytes) {
  // DER drops leading zeros; JOSE must put them back.
  const std::string jose = JoseWith(7, 9);
  absl::StatusOr<std::string> der = EcdsaJoseToDer(jose);
  ASSERT_TRUE(der.ok()) << der.status();
  EXPECT_EQ(der->size(), 8u);  // 30 06 02 01 07 02 01 09
  EXPECT_EQ(*EcdsaDerToJose(*der), jose);
}

TEST(EcdsaSignatureTest, JoseOfWrongSizeIsRejected) {
  EXPECT_TRUE(absl::IsInvalidArgument(EcdsaJoseToDer(std::string(63, 'x')).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(EcdsaJoseToDer(std::string(65, 'x')).status()));
}

TEST(EcdsaSignatureTest, GarbageDerIsAnInternalErrorAndLeavesNoQueuedErrors) {
  EXPECT_TRUE(absl::IsInternal(EcdsaDerToJose("not der").status()));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace pettube::auth::internal
