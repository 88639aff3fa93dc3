// Runs the jwt_fuzz entry point over hand-written seeds, so the fuzz target
// builds and its properties hold in every `bazel test //...`, not only when
// someone runs libFuzzer.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "libs/auth/jwk.h"
#include "libs/auth/jwt.h"
#include "libs/auth/jwt_fuzz.h"

namespace pettube::auth {
namespace {

using json = nlohmann::json;

int RunFuzzInput(const std::string& input) {
  return LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

std::string Part(const json& value) { return Base64UrlEncode(value.dump()); }

json Claims() {
  const int64_t now = absl::ToUnixSeconds(fuzzing::Now());
  return {{"iss", fuzzing::kIssuer},
          {"aud", fuzzing::kAudience},
          {"sub", "user-42"},
          {"iat", now - 60},
          {"exp", now + 600}};
}

TEST(JwtFuzzCorpusTest, ValidTokenFromTheFuzzKeyVerifies) {
  absl::StatusOr<SigningKey> key = SigningKey::FromPem(fuzzing::kKeyPem, fuzzing::kKid);
  ASSERT_TRUE(key.ok()) << key.status();
  const std::string token = *SignCompact(Claims(), *key);
  JwkSet keys;
  ASSERT_TRUE(keys.Add(*key->ToPublicKey()).ok());
  ValidationPolicy policy;
  policy.issuers = {fuzzing::kIssuer};
  policy.audience = fuzzing::kAudience;
  absl::StatusOr<Verifier> verifier = Verifier::Create(std::move(keys), policy);
  ASSERT_TRUE(verifier.ok());
  EXPECT_TRUE(verifier->Verify(token, fuzzing::Now()).ok());
  EXPECT_EQ(RunFuzzInput(token), 0);
}

TEST(JwtFuzzCorpusTest, HandWrittenSeedsRunWithoutViolatingTheProperties) {
  const std::string header = Part({{"alg", "ES256"}, {"kid", fuzzing::kKid}});
  const std::string claims = Part(Claims());
  const std::string sig64 = Base64UrlEncode(std::string(64, '\x01'));
  const std::vector<std::string> seeds = {
      "",
      ".",
      "..",
      "...",
      absl::StrCat(header, ".", claims, ".", sig64),
      absl::StrCat(header, ".", claims, "."),
      absl::StrCat(Part({{"alg", "none"}}), ".", claims, "."),
      absl::StrCat(Part({{"alg", "HS256"}, {"kid", "fuzz"}}), ".", claims, ".", sig64),
      absl::StrCat(Part({{"alg", "RS256"}, {"kid", "fuzz"}}), ".", claims, ".", sig64),
      absl::StrCat(Part({{"alg", "ES256"}, {"kid", "k9"}}), ".", claims, ".", sig64),
      absl::StrCat(Part({{"alg", "ES256"}, {"kid", 7}}), ".", claims, ".", sig64),
      absl::StrCat(Part({{"alg", "ES256"}, {"kid", "fuzz"}, {"crit", {"b64"}}}), ".", claims, ".",
                   sig64),
      absl::StrCat(header, ".", Part({{"exp", "soon"}, {"aud", {1, 2}}, {"iss", nullptr}}), ".",
                   sig64),
      absl::StrCat(header, ".",
                   Part({{"exp", 1e300}, {"nbf", -1e300}, {"iat", 18446744073709551615u}}), ".",
                   sig64),
      absl::StrCat(header, ".", Part(json::array()), ".", sig64),
      absl::StrCat(header, ".", Base64UrlEncode(std::string(3000, '[')), ".", sig64),
      absl::StrCat(header, ".", Base64UrlEncode("{\"sub\":\"\\ud800\"}"), ".", sig64),
      absl::StrCat(header, ".", Base64UrlEncode("{\"sub\":\"\xff\xfe\"}"), ".", sig64),
      absl::StrCat(header, "=.", claims, ".", sig64),
      std::string(9000, 'A'),
      std::string("\0.\0.\0", 5),
  };
  for (const std::string& seed : seeds) {
    SCOPED_TRACE(seed.substr(0, 80));
    EXPECT_EQ(RunFuzzInput(seed), 0);
  }
}

}  // namespace
}  // namespace pettube::auth
