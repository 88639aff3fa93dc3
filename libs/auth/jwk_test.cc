#include "libs/auth/jwk.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "libs/auth/openssl_util.h"
#include "libs/auth/test_keys.h"

namespace pettube::auth {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

MATCHER_P2(HasCodeAndMessage, code, substring, "") {
  *result_listener << arg;
  return arg.code() == code && absl::StrContains(arg.message(), substring);
}

// RSA key generation takes a while: one set of keys for the whole suite.
class JwkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_a_ = testing::GenerateRsaKey(2048).release();
    rsa_b_ = testing::GenerateRsaKey(2048).release();
    rsa_short_ = testing::GenerateRsaKey(1024).release();
  }
  static void TearDownTestSuite() {
    EVP_PKEY_free(rsa_a_);
    EVP_PKEY_free(rsa_b_);
    EVP_PKEY_free(rsa_short_);
  }

  static json EcJwk() {
    absl::StatusOr<SigningKey> key = SigningKey::Generate("ec1");
    EXPECT_TRUE(key.ok()) << key.status();
    return key->PublicJwk();
  }

  static EVP_PKEY* rsa_a_;
  static EVP_PKEY* rsa_b_;
  static EVP_PKEY* rsa_short_;
};

EVP_PKEY* JwkTest::rsa_a_ = nullptr;
EVP_PKEY* JwkTest::rsa_b_ = nullptr;
EVP_PKEY* JwkTest::rsa_short_ = nullptr;

TEST_F(JwkTest, EcJwkOfOurSigningKeyParsesAsEs256) {
  absl::StatusOr<PublicKey> key = PublicKeyFromJwk(EcJwk());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->kid(), "ec1");
  EXPECT_EQ(key->alg(), Algorithm::kEs256);
  EXPECT_EQ(key->type(), KeyType::kEc);
  EXPECT_EQ(EVP_PKEY_is_a(key->pkey(), "EC"), 1);
}

TEST_F(JwkTest, RsaJwkBuiltFromModulusAndExponentParsesAsRs256) {
  absl::StatusOr<PublicKey> key = PublicKeyFromJwk(testing::RsaPublicJwk(rsa_a_, "r1"));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->kid(), "r1");
  EXPECT_EQ(key->alg(), Algorithm::kRs256);
  EXPECT_EQ(key->type(), KeyType::kRsa);
  EXPECT_EQ(EVP_PKEY_get_bits(key->pkey()), 2048);
}

TEST_F(JwkTest, AlgAndUseMayBeAbsent) {
  json rsa = testing::RsaPublicJwk(rsa_a_, "r1");
  rsa.erase("alg");
  rsa.erase("use");
  absl::StatusOr<PublicKey> key = PublicKeyFromJwk(rsa);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->alg(), Algorithm::kRs256);
  json ec = EcJwk();
  ec.erase("alg");
  key = PublicKeyFromJwk(ec);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->alg(), Algorithm::kEs256);
}

TEST_F(JwkTest, EcJwkOnWrongCurveIsRejected) {
  json jwk = EcJwk();
  jwk["crv"] = "P-384";
  EXPECT_THAT(
      PublicKeyFromJwk(jwk).status(),
      HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwk.crv: \"P-384\" is not \"P-256\""));
}

TEST_F(JwkTest, EcJwkOnOtherCurveWithoutAlgIsUnsupported) {
  json jwk = EcJwk();
  jwk["crv"] = "secp256k1";
  jwk.erase("alg");
  EXPECT_THAT(PublicKeyFromJwk(jwk).status(),
              HasCodeAndMessage(absl::StatusCode::kUnimplemented,
                                "jwk.crv: \"secp256k1\" is not supported"));
}

TEST_F(JwkTest, ShortRsaModulusIsRejected) {
  EXPECT_THAT(PublicKeyFromJwk(testing::RsaPublicJwk(rsa_short_, "weak")).status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument,
                                "jwk.n: modulus is 1024 bits, want at least 2048"));
}

TEST_F(JwkTest, EvenRsaExponentIsRejected) {
  json jwk = testing::RsaPublicJwk(rsa_a_, "r1");
  jwk["e"] = Base64UrlEncode("\x01\x00\x00");
  EXPECT_THAT(PublicKeyFromJwk(jwk).status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwk.e: exponent must be odd"));
}

TEST_F(JwkTest, EcPointOffTheCurveIsRejected) {
  json jwk = EcJwk();
  std::string y = *Base64UrlDecode(jwk["y"].get<std::string>());
  y[31] ^= 1;
  jwk["y"] = Base64UrlEncode(y);
  EXPECT_THAT(PublicKeyFromJwk(jwk).status(), HasCodeAndMessage(absl::StatusCode::kInvalidArgument,
                                                                "not a valid P-256 public point"));
}

TEST_F(JwkTest, EcCoordinateOfWrongLengthIsRejected) {
  json jwk = EcJwk();
  jwk["x"] = Base64UrlEncode(std::string(31, '\x01'));
  EXPECT_THAT(PublicKeyFromJwk(jwk).status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwk.x: 31 bytes, want 32"));
}

TEST_F(JwkTest, MissingModulusIsRejected) {
  json jwk = testing::RsaPublicJwk(rsa_a_, "r1");
  jwk.erase("n");
  EXPECT_THAT(PublicKeyFromJwk(jwk).status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwk.n: missing"));
}

TEST_F(JwkTest, PaddedBase64MemberIsRejected) {
  json jwk = testing::RsaPublicJwk(rsa_a_, "r1");
  jwk["e"] = "AQAB====";
  EXPECT_THAT(
      PublicKeyFromJwk(jwk).status(),
      HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwk.e: not valid base64url: padding"));
}

TEST_F(JwkTest, AlgThatContradictsKtyIsRejected) {
  json jwk = EcJwk();
  jwk["alg"] = "RS256";
  EXPECT_THAT(PublicKeyFromJwk(jwk).status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument,
                                "jwk.alg: \"RS256\" contradicts kty \"EC\""));
}

TEST_F(JwkTest, EncryptionKeyIsUnsupported) {
  json jwk = testing::RsaPublicJwk(rsa_a_, "r1");
  jwk["use"] = "enc";
  EXPECT_THAT(PublicKeyFromJwk(jwk).status(), HasCodeAndMessage(absl::StatusCode::kUnimplemented,
                                                                "jwk.use: \"enc\" is not \"sig\""));
}

TEST_F(JwkTest, SymmetricKeyIsUnsupported) {
  EXPECT_THAT(PublicKeyFromJwk(json{{"kty", "oct"}, {"k", "c2VjcmV0"}}).status(),
              HasCodeAndMessage(absl::StatusCode::kUnimplemented, "jwk.kty: \"oct\""));
}

TEST_F(JwkTest, PublishedJwkNeverCarriesPrivateMembers) {
  json jwk = EcJwk();
  jwk["d"] = Base64UrlEncode(std::string(32, '\x07'));
  absl::StatusOr<PublicKey> key = PublicKeyFromJwk(jwk);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_FALSE(key->jwk().contains("d"));
}

// Shaped like https://www.googleapis.com/oauth2/v3/certs.
TEST_F(JwkTest, GoogleStyleJwksWithTwoRsaKeysParses) {
  const json a = testing::RsaPublicJwk(rsa_a_, "6f7254101f56e41cf35c9926de84a2d552b4c6f1");
  const json b = testing::RsaPublicJwk(rsa_b_, "a3b762f871cdb3bae0044c649622fc1396eda3e3");
  const std::string jwks = absl::StrCat(R"({
  "keys": [
    {
      "e": ")",
                                        a["e"].get<std::string>(), R"(",
      "kty": "RSA",
      "n": ")",
                                        a["n"].get<std::string>(), R"(",
      "use": "sig",
      "kid": "6f7254101f56e41cf35c9926de84a2d552b4c6f1",
      "alg": "RS256"
    },
    {
      "use": "sig",
      "kty": "RSA",
      "alg": "RS256",
      "n": ")",
                                        b["n"].get<std::string>(), R"(",
      "kid": "a3b762f871cdb3bae0044c649622fc1396eda3e3",
      "e": ")",
                                        b["e"].get<std::string>(), R"("
    }
  ]
})");
  absl::StatusOr<JwkSet> set = ParseJwks(jwks);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->kids(), ElementsAre("6f7254101f56e41cf35c9926de84a2d552b4c6f1",
                                       "a3b762f871cdb3bae0044c649622fc1396eda3e3"));
  const PublicKey* key = set->Find("a3b762f871cdb3bae0044c649622fc1396eda3e3");
  ASSERT_NE(key, nullptr);
  EXPECT_EQ(EVP_PKEY_eq(key->pkey(), rsa_b_), 1);
  EXPECT_EQ(set->Find("nope"), nullptr);
}

TEST_F(JwkTest, JwksSkipsKeysOfUnsupportedKinds) {
  json doc = {{"keys",
               {
                   {{"kty", "oct"}, {"kid", "hmac"}, {"k", "c2VjcmV0"}},
                   testing::RsaPublicJwk(rsa_a_, "r1"),
                   {{"kty", "RSA"}, {"kid", "enc"}, {"use", "enc"}, {"n", "AQAB"}, {"e", "AQAB"}},
                   {{"kty", "RSA"}, {"kid", "ps"}, {"alg", "PS256"}, {"n", "AQAB"}, {"e", "AQAB"}},
                   {{"kty", "EC"}, {"kid", "p384"}, {"crv", "P-384"}, {"x", "AA"}, {"y", "AA"}},
                   {{"kty", "OKP"}, {"kid", "ed"}, {"crv", "Ed25519"}, {"x", "AA"}},
               }}};
  absl::StatusOr<JwkSet> set = ParseJwks(doc.dump());
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->kids(), ElementsAre("r1"));
}

TEST_F(JwkTest, JwksWithMalformedSupportedKeyIsRejected) {
  json bad = testing::RsaPublicJwk(rsa_b_, "r2");
  bad["n"] = "not+base64";
  json doc = {{"keys", {testing::RsaPublicJwk(rsa_a_, "r1"), bad}}};
  EXPECT_THAT(
      ParseJwks(doc.dump()).status(),
      HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwks.keys[1].n: not valid base64url"));
}

TEST_F(JwkTest, JwksWithShortRsaKeyIsRejected) {
  json doc = {{"keys", {testing::RsaPublicJwk(rsa_short_, "weak")}}};
  EXPECT_THAT(ParseJwks(doc.dump()).status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument,
                                "jwks.keys[0].n: modulus is 1024 bits"));
}

TEST_F(JwkTest, JwksWithDuplicateKidIsRejected) {
  json doc = {{"keys", {testing::RsaPublicJwk(rsa_a_, "r1"), testing::RsaPublicJwk(rsa_b_, "r1")}}};
  EXPECT_THAT(ParseJwks(doc.dump()).status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument,
                                "jwks.keys[1].kid: \"r1\" appears twice"));
}

TEST_F(JwkTest, JwksKeyWithoutKidIsRejected) {
  json key = testing::RsaPublicJwk(rsa_a_, "r1");
  key.erase("kid");
  EXPECT_THAT(ParseJwks(json{{"keys", {key}}}.dump()).status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwks.keys[0].kid: missing"));
}

TEST_F(JwkTest, JwksWithoutUsableKeysIsRejected) {
  EXPECT_THAT(ParseJwks(R"({"keys": [{"kty": "oct", "k": "AA"}]})").status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwks: no usable key"));
  EXPECT_THAT(ParseJwks(R"({"keys": []})").status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwks: no usable key"));
}

TEST_F(JwkTest, JwksThatIsNotAKeysObjectIsRejected) {
  EXPECT_THAT(ParseJwks("{\"keys\": [").status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwks: not valid JSON"));
  EXPECT_THAT(ParseJwks("[]").status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwks: not a JSON object"));
  EXPECT_THAT(
      ParseJwks(R"({"keys": {}})").status(),
      HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "jwks.keys: missing or not an array"));
  EXPECT_THAT(ParseJwks(R"({"keys": [42]})").status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument,
                                "jwks.keys[0]: not a JSON object (number)"));
}

TEST_F(JwkTest, PublishedJwksParsesBackToTheSameKeys) {
  absl::StatusOr<SigningKey> current = SigningKey::Generate("at-2026-11");
  absl::StatusOr<SigningKey> previous = SigningKey::Generate("at-2026-10");
  ASSERT_TRUE(current.ok() && previous.ok());
  JwkSet published;
  ASSERT_TRUE(published.Add(*current->ToPublicKey()).ok());
  ASSERT_TRUE(published.Add(*previous->ToPublicKey()).ok());

  const std::string text = ToJwksJson(published);
  EXPECT_THAT(text, HasSubstr(R"("kid":"at-2026-10")"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("\"d\"")));
  absl::StatusOr<JwkSet> parsed = ParseJwks(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(parsed->kids(), ElementsAre("at-2026-10", "at-2026-11"));
  EXPECT_EQ(EVP_PKEY_eq(parsed->Find("at-2026-11")->pkey(), published.Find("at-2026-11")->pkey()),
            1);
}

TEST_F(JwkTest, JwkSetRefusesKeyWithoutKidAndDuplicateKid) {
  JwkSet set;
  json no_kid = EcJwk();
  no_kid.erase("kid");
  EXPECT_TRUE(absl::IsInvalidArgument(set.Add(*PublicKeyFromJwk(no_kid))));
  ASSERT_TRUE(set.Add(*PublicKeyFromJwk(EcJwk())).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(set.Add(*PublicKeyFromJwk(EcJwk()))));
  EXPECT_EQ(set.size(), 1u);
}

TEST(SigningKeyTest, PemRoundTripKeepsTheKey) {
  absl::StatusOr<SigningKey> key = SigningKey::Generate("k1");
  ASSERT_TRUE(key.ok()) << key.status();
  const std::string pem = key->PrivatePem();
  EXPECT_THAT(pem, HasSubstr("-----BEGIN PRIVATE KEY-----"));
  absl::StatusOr<SigningKey> loaded = SigningKey::FromPem(pem, "k1");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->PublicJwk(), key->PublicJwk());
}

TEST(SigningKeyTest, PublicJwkDescribesAnEs256SigningKey) {
  absl::StatusOr<SigningKey> key = SigningKey::Generate("k1");
  ASSERT_TRUE(key.ok()) << key.status();
  const json& jwk = key->PublicJwk();
  EXPECT_EQ(jwk["kty"], "EC");
  EXPECT_EQ(jwk["crv"], "P-256");
  EXPECT_EQ(jwk["alg"], "ES256");
  EXPECT_EQ(jwk["use"], "sig");
  EXPECT_EQ(jwk["kid"], "k1");
  EXPECT_EQ(Base64UrlDecode(jwk["x"].get<std::string>())->size(), 32u);
  EXPECT_FALSE(jwk.contains("d"));
}

TEST(SigningKeyTest, SignProducesA64ByteJoseSignatureThatOpenSslVerifies) {
  absl::StatusOr<SigningKey> key = SigningKey::Generate("k1");
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> sig = key->Sign("header.payload");
  ASSERT_TRUE(sig.ok()) << sig.status();
  ASSERT_EQ(sig->size(), 64u);

  absl::StatusOr<PublicKey> public_key = key->ToPublicKey();
  ASSERT_TRUE(public_key.ok()) << public_key.status();
  const std::string der = *internal::EcdsaJoseToDer(*sig);
  internal::UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
  ASSERT_EQ(EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, public_key->pkey()), 1);
  EXPECT_EQ(
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                       reinterpret_cast<const unsigned char*>("header.payload"), 14),
      1);
}

TEST(SigningKeyTest, RsaPemIsRejected) {
  UniqueEvpPkey rsa = testing::GenerateRsaKey(2048);
  internal::UniqueBio bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), rsa.get(), nullptr, nullptr, 0, nullptr, nullptr),
            1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  EXPECT_THAT(
      SigningKey::FromPem(absl::string_view(data, len), "k1").status(),
      HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "RSA key, ES256 needs EC P-256"));
}

TEST(SigningKeyTest, KeyOnAnotherCurveIsRejected) {
  UniqueEvpPkey p384(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  ASSERT_NE(p384, nullptr);
  internal::UniqueBio bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), p384.get(), nullptr, nullptr, 0, nullptr, nullptr),
            1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  EXPECT_THAT(
      SigningKey::FromPem(absl::string_view(data, len), "k1").status(),
      HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "curve \"secp384r1\" is not P-256"));
}

TEST(SigningKeyTest, EncryptedPemIsRejectedWithoutPromptingForAPassphrase) {
  absl::StatusOr<SigningKey> key = SigningKey::Generate("k1");
  ASSERT_TRUE(key.ok());
  // Re-encrypt the same key under a passphrase.
  const std::string plain = key->PrivatePem();
  internal::UniqueBio plain_bio(BIO_new_mem_buf(plain.data(), static_cast<int>(plain.size())));
  UniqueEvpPkey pkey(PEM_read_bio_PrivateKey(plain_bio.get(), nullptr, nullptr, nullptr));
  ASSERT_NE(pkey, nullptr);
  internal::UniqueBio out(BIO_new(BIO_s_mem()));
  char passphrase[] = "hunter2";
  ASSERT_EQ(
      PEM_write_bio_PrivateKey(out.get(), pkey.get(), EVP_aes_256_cbc(),
                               reinterpret_cast<unsigned char*>(passphrase), 7, nullptr, nullptr),
      1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(out.get(), &data);
  const std::string encrypted(data, len);
  ASSERT_THAT(encrypted, HasSubstr("ENCRYPTED"));
  EXPECT_THAT(
      SigningKey::FromPem(encrypted, "k1").status(),
      HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "not an unencrypted PEM private key"));
}

TEST(SigningKeyTest, GarbagePemIsRejected) {
  EXPECT_THAT(
      SigningKey::FromPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "k1")
          .status(),
      HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "not an unencrypted PEM private key"));
}

TEST(SigningKeyTest, KidMustBePrintableAscii) {
  EXPECT_THAT(SigningKey::Generate("").status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "kid: must be 1 to 128"));
  EXPECT_THAT(SigningKey::Generate("a b").status(),
              HasCodeAndMessage(absl::StatusCode::kInvalidArgument, "kid: must be"));
}

}  // namespace
}  // namespace pettube::auth
