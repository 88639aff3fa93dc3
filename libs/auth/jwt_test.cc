#include "libs/auth/jwt.h"

#include <openssl/evp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "libs/auth/jwk.h"
#include "libs/auth/test_keys.h"

namespace pettube::auth {
namespace {

using json = nlohmann::json;

MATCHER_P(IsUnauthenticatedWith, substring, "") {
  *result_listener << arg;
  return absl::IsUnauthenticated(arg) && absl::StrContains(arg.message(), substring);
}

constexpr char kIssuer[] = "https://auth.pettube.dev";
constexpr char kAudience[] = "pettube";

// 2026-11-23T05:10:00Z: every test runs at this instant.
absl::Time Now() {
  return absl::FromCivil(absl::CivilSecond(2026, 11, 23, 5, 10, 0), absl::UTCTimeZone());
}

int64_t At(absl::Duration from_now) { return absl::ToUnixSeconds(Now() + from_now); }

// Replaces part `index` (0 header, 1 payload, 2 signature) of a compact token.
std::string WithPart(absl::string_view token, int index, absl::string_view part) {
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  parts[index] = std::string(part);
  return absl::StrJoin(parts, ".");
}

// A verifier trusting our ES256 key "k1" and an RSA key "r1", as a service
// would that accepts both our access tokens and Google-style ID tokens.
class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { rsa_ = testing::GenerateRsaKey(2048).release(); }
  static void TearDownTestSuite() { EVP_PKEY_free(rsa_); }

  void SetUp() override {
    absl::StatusOr<SigningKey> key = SigningKey::Generate("k1");
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = std::make_unique<SigningKey>(*std::move(key));
    JwkSet keys;
    ASSERT_TRUE(keys.Add(*key_->ToPublicKey()).ok());
    ASSERT_TRUE(keys.Add(*PublicKeyFromJwk(testing::RsaPublicJwk(rsa_, "r1"))).ok());
    ValidationPolicy policy;
    policy.issuers = {kIssuer};
    policy.audience = kAudience;
    absl::StatusOr<Verifier> verifier = Verifier::Create(std::move(keys), policy);
    ASSERT_TRUE(verifier.ok()) << verifier.status();
    verifier_ = std::make_unique<Verifier>(*std::move(verifier));
  }

  static json Claims() {
    return {{"iss", kIssuer},
            {"aud", kAudience},
            {"sub", "user-42"},
            {"iat", At(-absl::Minutes(1))},
            {"exp", At(absl::Minutes(14))},
            {"scope", "videos:upload"}};
  }

  // Our real signer: header {"alg":"ES256","kid":"k1","typ":"JWT"}.
  std::string Sign(const json& claims) const {
    absl::StatusOr<std::string> token = SignCompact(claims, *key_);
    EXPECT_TRUE(token.ok()) << token.status();
    return *token;
  }

  // Any header, signed ES256 by `key` (our key by default).
  std::string SignWithHeader(const json& header, const json& claims,
                             const SigningKey* key = nullptr) const {
    const std::string input = testing::SigningInput(header, claims);
    return testing::Compact(input, *(key ? key : key_.get())->Sign(input));
  }

  std::string SignRs256(const json& header, const json& claims) const {
    const std::string input = testing::SigningInput(header, claims);
    return testing::Compact(input, testing::Rs256Sign(rsa_, input));
  }

  absl::Status Verify(absl::string_view token) const {
    return verifier_->Verify(token, Now()).status();
  }

  static EVP_PKEY* rsa_;
  std::unique_ptr<SigningKey> key_;
  std::unique_ptr<Verifier> verifier_;
};

EVP_PKEY* JwtTest::rsa_ = nullptr;

// --- Tokens that verify ---

TEST_F(JwtTest, Es256TokenSignedWithOurKeyVerifies) {
  absl::StatusOr<json> claims = verifier_->Verify(Sign(Claims()), Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ((*claims)["sub"], "user-42");
  EXPECT_EQ((*claims)["scope"], "videos:upload");
}

TEST_F(JwtTest, SignCompactWritesAnEs256HeaderNamingTheKey) {
  absl::StatusOr<Jwt> jwt = ParseCompact(Sign(Claims()));
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  EXPECT_EQ(jwt->header, (json{{"alg", "ES256"}, {"typ", "JWT"}, {"kid", "k1"}}));
  EXPECT_EQ(jwt->signature.size(), 64u);
  EXPECT_EQ(jwt->claims, Claims());
}

TEST_F(JwtTest, Rs256TokenFromGeneratedRsaKeyVerifies) {
  const std::string token = SignRs256({{"alg", "RS256"}, {"kid", "r1"}, {"typ", "JWT"}}, Claims());
  absl::StatusOr<json> claims = verifier_->Verify(token, Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ((*claims)["sub"], "user-42");
}

TEST_F(JwtTest, AudienceArrayContainingOurAudienceIsAccepted) {
  json claims = Claims();
  claims["aud"] = {"other-service", kAudience};
  EXPECT_TRUE(Verify(Sign(claims)).ok());
}

TEST_F(JwtTest, FractionalNumericDatesAreAccepted) {
  json claims = Claims();
  claims["iat"] = At(-absl::Minutes(1)) + 0.25;
  claims["exp"] = At(absl::Minutes(14)) + 0.5;
  claims["nbf"] = At(-absl::Minutes(1)) + 0.75;
  EXPECT_TRUE(Verify(Sign(claims)).ok());
}

TEST_F(JwtTest, ExpiryWithinClockSkewIsAccepted) {
  json claims = Claims();
  claims["exp"] = At(-absl::Seconds(30));
  EXPECT_TRUE(Verify(Sign(claims)).ok());
}

TEST_F(JwtTest, RotatedOutKeyIsStillFoundByKid) {
  // Two of our keys during rotation: tokens from either verify.
  absl::StatusOr<SigningKey> next = SigningKey::Generate("k2");
  ASSERT_TRUE(next.ok());
  JwkSet keys;
  ASSERT_TRUE(keys.Add(*key_->ToPublicKey()).ok());
  ASSERT_TRUE(keys.Add(*next->ToPublicKey()).ok());
  absl::StatusOr<Verifier> verifier = Verifier::Create(std::move(keys), verifier_->policy());
  ASSERT_TRUE(verifier.ok());
  EXPECT_TRUE(verifier->Verify(Sign(Claims()), Now()).ok());
  EXPECT_TRUE(verifier->Verify(*SignCompact(Claims(), *next), Now()).ok());
}

TEST_F(JwtTest, ConcurrentVerifiesOnOneVerifierAllSucceed) {
  // Every request thread of a service shares one Verifier (and so one
  // EVP_PKEY per key).
  const std::string es256 = Sign(Claims());
  const std::string rs256 = SignRs256({{"alg", "RS256"}, {"kid", "r1"}}, Claims());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (!Verify(i % 2 == 0 ? es256 : rs256).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

// --- Forged signatures and algorithm attacks ---

TEST_F(JwtTest, FlippedSignatureByteIsRejected) {
  const std::string token = Sign(Claims());
  std::string sig = *Base64UrlDecode(token.substr(token.rfind('.') + 1));
  sig[10] ^= 0x01;
  EXPECT_THAT(Verify(WithPart(token, 2, Base64UrlEncode(sig))),
              IsUnauthenticatedWith("token: signature does not verify with key \"k1\" (ES256)"));
}

TEST_F(JwtTest, FlippedPayloadByteIsRejected) {
  const std::string token = Sign(Claims());
  json claims = Claims();
  claims["sub"] = "admin";
  EXPECT_THAT(Verify(WithPart(token, 1, Base64UrlEncode(claims.dump()))),
              IsUnauthenticatedWith("signature does not verify"));
}

TEST_F(JwtTest, SignatureFromAnotherKeyWithTheSameKidIsRejected) {
  absl::StatusOr<SigningKey> impostor = SigningKey::Generate("k1");
  ASSERT_TRUE(impostor.ok());
  EXPECT_THAT(Verify(*SignCompact(Claims(), *impostor)),
              IsUnauthenticatedWith("signature does not verify with key \"k1\""));
}

TEST_F(JwtTest, AlgNoneWithEmptySignatureIsRejected) {
  const std::string token = absl::StrCat(
      testing::SigningInput({{"alg", "none"}, {"kid", "k1"}, {"typ", "JWT"}}, Claims()), ".");
  EXPECT_THAT(Verify(token),
              IsUnauthenticatedWith("token: alg \"none\" is refused: unsecured tokens are never "
                                    "accepted"));
}

TEST_F(JwtTest, AlgNoneWithNonEmptySignatureIsRejected) {
  const std::string token = testing::Compact(
      testing::SigningInput({{"alg", "none"}, {"kid", "k1"}}, Claims()), "anything");
  EXPECT_THAT(Verify(token), IsUnauthenticatedWith("alg \"none\" is refused"));
}

TEST_F(JwtTest, AlgNoneInOtherLetterCaseIsRejected) {
  const std::string token =
      absl::StrCat(testing::SigningInput({{"alg", "NoNe"}, {"kid", "k1"}}, Claims()), ".");
  EXPECT_THAT(Verify(token), IsUnauthenticatedWith("alg \"NoNe\" is refused"));
}

TEST_F(JwtTest, Hs256KeyedWithThePublicKeyPemIsRejected) {
  // Algorithm confusion: a verifier that dispatched on the header would use
  // the (public) PEM as the HMAC secret and accept this forgery.
  const std::string pem = testing::PublicKeyPem(verifier_->keys().Find("k1")->pkey());
  const std::string input =
      testing::SigningInput({{"alg", "HS256"}, {"kid", "k1"}, {"typ", "JWT"}}, Claims());
  EXPECT_THAT(
      Verify(testing::Compact(input, testing::HmacSha256(pem, input))),
      IsUnauthenticatedWith("token: alg \"HS256\" is refused: HMAC algorithms are never accepted"));
}

TEST_F(JwtTest, Hs256KeyedWithThePublicJwkIsRejected) {
  const std::string jwk = verifier_->keys().Find("r1")->jwk().dump();
  const std::string input = testing::SigningInput({{"alg", "HS256"}, {"kid", "r1"}}, Claims());
  EXPECT_THAT(Verify(testing::Compact(input, testing::HmacSha256(jwk, input))),
              IsUnauthenticatedWith("alg \"HS256\" is refused"));
}

TEST_F(JwtTest, VerifySignatureRefusesHmacEvenWhenHandedTheKeyDirectly) {
  const PublicKey& key = *verifier_->keys().Find("k1");
  const std::string pem = testing::PublicKeyPem(key.pkey());
  const std::string input = testing::SigningInput({{"alg", "HS256"}, {"kid", "k1"}}, Claims());
  absl::StatusOr<Jwt> jwt = ParseCompact(testing::Compact(input, testing::HmacSha256(pem, input)));
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  EXPECT_THAT(VerifySignature(*jwt, key), IsUnauthenticatedWith("alg \"HS256\" is refused"));
}

TEST_F(JwtTest, Rs256HeaderOnAnEcKeyIsRejected) {
  const std::string token = SignRs256({{"alg", "RS256"}, {"kid", "k1"}}, Claims());
  EXPECT_THAT(Verify(token),
              IsUnauthenticatedWith("token: alg \"RS256\" does not match key \"k1\" (ES256)"));
}

TEST_F(JwtTest, Es256HeaderOnAnRsaKeyIsRejected) {
  const std::string token = SignWithHeader({{"alg", "ES256"}, {"kid", "r1"}}, Claims());
  EXPECT_THAT(Verify(token),
              IsUnauthenticatedWith("token: alg \"ES256\" does not match key \"r1\" (RS256)"));
}

TEST_F(JwtTest, UnsupportedAlgIsRejected) {
  const std::string token = SignWithHeader({{"alg", "PS256"}, {"kid", "r1"}}, Claims());
  EXPECT_THAT(Verify(token), IsUnauthenticatedWith("alg \"PS256\" is not supported"));
}

TEST_F(JwtTest, MissingAlgIsRejected) {
  EXPECT_THAT(Verify(SignWithHeader({{"kid", "k1"}}, Claims())),
              IsUnauthenticatedWith("token: header has no alg"));
}

TEST_F(JwtTest, DerEncodedEs256SignatureIsRejected) {
  // Some libraries emit DER; JOSE requires the fixed 64-byte r || s.
  const std::string input = testing::SigningInput({{"alg", "ES256"}, {"kid", "k1"}}, Claims());
  const std::string der(70, '\x30');
  EXPECT_THAT(Verify(testing::Compact(input, der)),
              IsUnauthenticatedWith("token: ES256 signature is 70 bytes, want 64"));
}

TEST_F(JwtTest, TruncatedRs256SignatureIsRejected) {
  std::string token = SignRs256({{"alg", "RS256"}, {"kid", "r1"}}, Claims());
  std::string sig = *Base64UrlDecode(token.substr(token.rfind('.') + 1));
  sig.pop_back();
  EXPECT_THAT(Verify(WithPart(token, 2, Base64UrlEncode(sig))),
              IsUnauthenticatedWith("token: RS256 signature is 255 bytes, want 256"));
}

TEST_F(JwtTest, CritHeaderIsRejected) {
  const std::string token =
      SignWithHeader({{"alg", "ES256"}, {"kid", "k1"}, {"crit", {"exp"}}}, Claims());
  EXPECT_THAT(Verify(token), IsUnauthenticatedWith("crit header parameters are not supported"));
}

// --- Key selection ---

TEST_F(JwtTest, UnknownKidIsRejectedAndMarkedForJwksRefresh) {
  const absl::Status status = Verify(SignWithHeader({{"alg", "ES256"}, {"kid", "k9"}}, Claims()));
  EXPECT_THAT(status, IsUnauthenticatedWith("token: unknown key id \"k9\""));
  EXPECT_TRUE(IsUnknownKeyId(status));
}

TEST_F(JwtTest, MissingKidIsRejectedButNotMarkedForRefresh) {
  const absl::Status status = Verify(SignWithHeader({{"alg", "ES256"}}, Claims()));
  EXPECT_THAT(status, IsUnauthenticatedWith("token: header has no kid"));
  EXPECT_FALSE(IsUnknownKeyId(status));
}

TEST_F(JwtTest, NonStringKidIsRejected) {
  EXPECT_THAT(Verify(SignWithHeader({{"alg", "ES256"}, {"kid", 7}}, Claims())),
              IsUnauthenticatedWith("token: header kid is not a string (number)"));
}

TEST_F(JwtTest, AlgNoneWithUnknownKidIsNotMarkedForRefresh) {
  // Junk must not make a service hammer its IdP's JWKS endpoint.
  const absl::Status status = Verify(
      absl::StrCat(testing::SigningInput({{"alg", "none"}, {"kid", "k9"}}, Claims()), ".AAAA"));
  EXPECT_THAT(status, IsUnauthenticatedWith("alg \"none\" is refused"));
  EXPECT_FALSE(IsUnknownKeyId(status));
}

TEST(IsUnknownKeyIdTest, OtherStatusesAreNotUnknownKeyIds) {
  EXPECT_FALSE(IsUnknownKeyId(absl::OkStatus()));
  EXPECT_FALSE(IsUnknownKeyId(absl::UnauthenticatedError("token: unknown key id \"k9\"")));
}

// --- Claims ---

TEST_F(JwtTest, ExpiredTokenIsRejected) {
  json claims = Claims();
  claims["iat"] = At(-absl::Minutes(20));
  claims["exp"] = At(-absl::Minutes(10));
  EXPECT_THAT(
      Verify(Sign(claims)),
      IsUnauthenticatedWith("token: expired at 2026-11-23T05:00:00Z (now 2026-11-23T05:10:00Z)"));
}

TEST_F(JwtTest, TokenNotYetValidIsRejected) {
  json claims = Claims();
  claims["nbf"] = At(absl::Minutes(5));
  EXPECT_THAT(Verify(Sign(claims)),
              IsUnauthenticatedWith("token: not valid before 2026-11-23T05:15:00Z (nbf; now "
                                    "2026-11-23T05:10:00Z)"));
}

TEST_F(JwtTest, TokenIssuedInTheFutureIsRejected) {
  json claims = Claims();
  claims["iat"] = At(absl::Minutes(5));
  EXPECT_THAT(Verify(Sign(claims)),
              IsUnauthenticatedWith("token: issued in the future at 2026-11-23T05:15:00Z (iat;"));
}

TEST_F(JwtTest, WrongAudienceIsRejected) {
  json claims = Claims();
  claims["aud"] = "x";
  EXPECT_THAT(Verify(Sign(claims)), IsUnauthenticatedWith("token: aud \"x\" is not \"pettube\""));
}

TEST_F(JwtTest, AudienceArrayWithoutOurAudienceIsRejected) {
  json claims = Claims();
  claims["aud"] = {"a", "b"};
  EXPECT_THAT(Verify(Sign(claims)),
              IsUnauthenticatedWith("token: aud array (2 entries) does not contain \"pettube\""));
}

TEST_F(JwtTest, MissingAudienceIsRejected) {
  json claims = Claims();
  claims.erase("aud");
  EXPECT_THAT(Verify(Sign(claims)), IsUnauthenticatedWith("token: aud is missing"));
}

TEST_F(JwtTest, UntrustedIssuerIsRejected) {
  json claims = Claims();
  claims["iss"] = "https://evil";
  EXPECT_THAT(Verify(Sign(claims)),
              IsUnauthenticatedWith("token: iss \"https://evil\" is not trusted"));
}

TEST_F(JwtTest, MissingExpIsRejected) {
  json claims = Claims();
  claims.erase("exp");
  EXPECT_THAT(Verify(Sign(claims)), IsUnauthenticatedWith("token: exp is missing"));
}

TEST_F(JwtTest, NonNumericExpIsRejected) {
  json claims = Claims();
  claims["exp"] = "2026-11-23T06:00:00Z";
  EXPECT_THAT(Verify(Sign(claims)), IsUnauthenticatedWith("token: exp is not a number (string)"));
  claims["exp"] = true;
  EXPECT_THAT(Verify(Sign(claims)), IsUnauthenticatedWith("token: exp is not a number (boolean)"));
}

TEST_F(JwtTest, HugeExpIsStillBoundedByMaxLifetime) {
  json claims = Claims();
  claims["exp"] = 1e300;
  ValidationPolicy policy = verifier_->policy();
  policy.max_lifetime = absl::Minutes(15);
  EXPECT_THAT(ValidateClaims(claims, policy, Now()),
              IsUnauthenticatedWith("token: lifetime inf (exp - iat) exceeds the 15m limit"));
}

TEST_F(JwtTest, LifetimeAboveTheMaximumIsRejected) {
  json claims = Claims();
  claims["exp"] = At(absl::Hours(24));
  ValidationPolicy policy = verifier_->policy();
  policy.max_lifetime = absl::Hours(1);
  EXPECT_THAT(ValidateClaims(claims, policy, Now()),
              IsUnauthenticatedWith("token: lifetime 24h1m (exp - iat) exceeds the 1h limit"));
}

TEST_F(JwtTest, MissingIatIsRejectedWhenRequired) {
  json claims = Claims();
  claims.erase("iat");
  EXPECT_THAT(Verify(Sign(claims)), IsUnauthenticatedWith("token: iat is missing"));
  ValidationPolicy lenient = verifier_->policy();
  lenient.require_iat = false;
  EXPECT_TRUE(ValidateClaims(claims, lenient, Now()).ok());
}

TEST_F(JwtTest, MissingOrEmptySubjectIsRejected) {
  json claims = Claims();
  claims["sub"] = "";
  EXPECT_THAT(Verify(Sign(claims)), IsUnauthenticatedWith("token: sub is empty"));
  claims.erase("sub");
  EXPECT_THAT(Verify(Sign(claims)), IsUnauthenticatedWith("token: sub is missing"));
}

TEST(ValidateClaimsTest, EmptyAudienceInPolicyIsAPreconditionFailure) {
  ValidationPolicy policy;
  policy.issuers = {kIssuer};
  EXPECT_TRUE(absl::IsFailedPrecondition(ValidateClaims(json::object(), policy, Now())));
}

TEST(VerifierTest, UnusablePoliciesAreRefusedAtCreation) {
  ValidationPolicy policy;
  policy.audience = kAudience;
  EXPECT_THAT(Verifier::Create(JwkSet(), policy).status().message(),
              ::testing::HasSubstr("policy.issuers: must not be empty"));
  policy.issuers = {kIssuer};
  policy.audience = "";
  EXPECT_THAT(Verifier::Create(JwkSet(), policy).status().message(),
              ::testing::HasSubstr("policy.audience: must not be empty"));
  policy.audience = kAudience;
  policy.clock_skew = -absl::Seconds(1);
  EXPECT_TRUE(absl::IsInvalidArgument(Verifier::Create(JwkSet(), policy).status()));
}

// --- Structure ---

TEST_F(JwtTest, TwoPartTokenIsRejected) {
  EXPECT_THAT(Verify("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0"),
              IsUnauthenticatedWith("token: malformed: 2 parts, want 3"));
}

TEST_F(JwtTest, FourPartTokenIsRejected) {
  EXPECT_THAT(Verify(absl::StrCat(Sign(Claims()), ".AAAA")),
              IsUnauthenticatedWith("token: malformed: 4 parts, want 3"));
}

TEST_F(JwtTest, EmptyTokenIsRejected) {
  EXPECT_THAT(Verify(""), IsUnauthenticatedWith("token: empty"));
}

TEST_F(JwtTest, OversizedTokenIsRejected) {
  json claims = Claims();
  claims["padding"] = std::string(7000, 'x');
  const std::string token = Sign(claims);
  ASSERT_GT(token.size(), 8192u);
  EXPECT_THAT(Verify(token), IsUnauthenticatedWith(absl::StrCat(
                                 "token: ", token.size(), " bytes exceeds the 8192-byte limit")));
  EXPECT_THAT(ParseCompact(std::string(9000, 'a')).status(),
              IsUnauthenticatedWith("token: 9000 bytes exceeds the 8192-byte limit"));
}

TEST_F(JwtTest, MalformedBase64InHeaderIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 0, "eyJh+GciOiJFUzI1NiJ9")),
              IsUnauthenticatedWith(
                  "token: header is not valid base64url: invalid character '+' at offset 4"));
}

TEST_F(JwtTest, MalformedBase64InPayloadIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 1, "eyJzdWIiOiJ4In0=")),
              IsUnauthenticatedWith("token: payload is not valid base64url: padding"));
}

TEST_F(JwtTest, MalformedBase64InSignatureIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 2, "abc/def")),
              IsUnauthenticatedWith("token: signature is not valid base64url"));
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 2, "A")),
              IsUnauthenticatedWith("token: signature is not valid base64url: length 1"));
}

TEST_F(JwtTest, EmptySignatureIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 2, "")),
              IsUnauthenticatedWith("token: signature is empty"));
}

TEST_F(JwtTest, EmptyHeaderIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 0, "")),
              IsUnauthenticatedWith("token: header is empty"));
}

TEST_F(JwtTest, HeaderThatIsNotJsonIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 0, Base64UrlEncode("{\"alg\":\"ES256\""))),
              IsUnauthenticatedWith("token: header is not valid JSON"));
}

TEST_F(JwtTest, HeaderThatIsNotAnObjectIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 0, Base64UrlEncode("[\"ES256\"]"))),
              IsUnauthenticatedWith("token: header is not a JSON object (array)"));
}

TEST_F(JwtTest, PayloadThatIsNotJsonIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 1, Base64UrlEncode("sub=user-42"))),
              IsUnauthenticatedWith("token: payload is not valid JSON"));
}

TEST_F(JwtTest, PayloadThatIsNotAnObjectIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 1, Base64UrlEncode("\"user-42\""))),
              IsUnauthenticatedWith("token: payload is not a JSON object (string)"));
}

TEST_F(JwtTest, JsonWithCommentsIsRejected) {
  EXPECT_THAT(Verify(WithPart(Sign(Claims()), 0,
                              Base64UrlEncode("{\"alg\":\"ES256\",/*x*/\"kid\":\"k1\"}"))),
              IsUnauthenticatedWith("token: header is not valid JSON"));
}

TEST(SignCompactTest, ClaimsThatAreNotAnObjectAreRejected) {
  absl::StatusOr<SigningKey> key = SigningKey::Generate("k1");
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(SignCompact(json::array(), *key).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(SignCompact(json{{"sub", std::string("\xff")}}, *key).status()));
}

}  // namespace
}  // namespace pettube::auth
