#include "libs/auth/jwk.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/auth/base64url.h"
#include "libs/auth/openssl_util.h"
#include "libs/auth/quote.h"

namespace pettube::auth {

namespace {

using json = nlohmann::json;
using internal::BignumBytes;
using internal::DrainOpenSslErrors;
using internal::UniqueBignum;
using internal::UniqueBio;
using internal::UniqueEvpMdCtx;
using internal::UniqueEvpPkeyCtx;
using internal::UniqueOsslParamBld;
using internal::UniqueOsslParams;

constexpr int kMinRsaModulusBits = 2048;
// A verify costs roughly the cube of the modulus size: cap it so a broken or
// hostile JWKS cannot make every token check take tens of milliseconds.
constexpr int kMaxRsaModulusBits = 8192;
// OpenSSL's public-key check (SP 800-56B) allows exponents below 2^256.
constexpr int kMaxRsaExponentBits = 256;
constexpr size_t kMaxKidBytes = 128;
constexpr size_t kMaxPemBytes = 64 * 1024;

// A member name prefixed with where the JWK sits: "jwk.n", "jwks.keys[2].n".
std::string Field(absl::string_view where, absl::string_view member) {
  return absl::StrCat(where, ".", member);
}

// Returns the string member `name`, nullptr if absent, INVALID_ARGUMENT if it
// is not a string.
absl::StatusOr<const std::string*> OptionalString(const json& obj, const char* name,
                                                  absl::string_view where) {
  const auto it = obj.find(name);
  if (it == obj.end()) return static_cast<const std::string*>(nullptr);
  const auto* value = it->get_ptr<const std::string*>();
  if (value == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(Field(where, name), ": not a string (", it->type_name(), ")"));
  }
  return value;
}

absl::StatusOr<std::string> RequiredBase64Url(const json& obj, const char* name,
                                              absl::string_view where) {
  absl::StatusOr<const std::string*> text = OptionalString(obj, name, where);
  if (!text.ok()) return text.status();
  if (*text == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(Field(where, name), ": missing"));
  }
  absl::StatusOr<std::string> bytes = Base64UrlDecode(**text);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Field(where, name),
        ": not valid base64url: ", absl::StripPrefix(bytes.status().message(), "base64url: ")));
  }
  if (bytes->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(Field(where, name), ": empty"));
  }
  return bytes;
}

UniqueBignum BignumFromBytes(absl::string_view bytes) {
  return UniqueBignum(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()), nullptr));
}

// EVP_PKEY_fromdata only imports the numbers; EVP_PKEY_public_check is what
// rejects a composite-looking modulus or a point off the curve.
absl::StatusOr<UniqueEvpPkey> PublicPkeyFromParams(const char* type, OSSL_PARAM_BLD* builder,
                                                   absl::string_view where) {
  UniqueOsslParams params(OSSL_PARAM_BLD_to_param(builder));
  UniqueEvpPkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": OpenSSL rejected the ", type, " key: ", DrainOpenSslErrors()));
  }
  UniqueEvpPkey pkey(raw);
  UniqueEvpPkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (check == nullptr || EVP_PKEY_public_check(check.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", type, " public key check failed: ", DrainOpenSslErrors()));
  }
  return pkey;
}

absl::StatusOr<UniqueEvpPkey> RsaPkey(const json& jwk, absl::string_view where, json* normalized) {
  absl::StatusOr<std::string> n_bytes = RequiredBase64Url(jwk, "n", where);
  if (!n_bytes.ok()) return n_bytes.status();
  absl::StatusOr<std::string> e_bytes = RequiredBase64Url(jwk, "e", where);
  if (!e_bytes.ok()) return e_bytes.status();
  UniqueBignum n = BignumFromBytes(*n_bytes);
  UniqueBignum e = BignumFromBytes(*e_bytes);
  if (n == nullptr || e == nullptr) {
    return absl::InternalError(absl::StrCat(where, ": ", DrainOpenSslErrors()));
  }
  const int bits = BN_num_bits(n.get());
  if (bits < kMinRsaModulusBits) {
    return absl::InvalidArgumentError(absl::StrCat(Field(where, "n"), ": modulus is ", bits,
                                                   " bits, want at least ", kMinRsaModulusBits));
  }
  if (bits > kMaxRsaModulusBits) {
    return absl::InvalidArgumentError(absl::StrCat(Field(where, "n"), ": modulus is ", bits,
                                                   " bits, want at most ", kMaxRsaModulusBits));
  }
  if (!BN_is_odd(e.get()) || BN_is_one(e.get()) || BN_num_bits(e.get()) > kMaxRsaExponentBits) {
    return absl::InvalidArgumentError(
        absl::StrCat(Field(where, "e"), ": exponent must be odd, greater than 1 and below 2^256"));
  }
  UniqueOsslParamBld builder(OSSL_PARAM_BLD_new());
  if (builder == nullptr ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(builder.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
    return absl::InternalError(absl::StrCat(where, ": ", DrainOpenSslErrors()));
  }
  absl::StatusOr<UniqueEvpPkey> pkey = PublicPkeyFromParams("RSA", builder.get(), where);
  if (!pkey.ok()) return pkey.status();
  // Minimal big-endian form: a JWK with a leading zero byte is republished
  // without it.
  (*normalized)["n"] = Base64UrlEncode(BignumBytes(n.get()));
  (*normalized)["e"] = Base64UrlEncode(BignumBytes(e.get()));
  return pkey;
}

absl::StatusOr<UniqueEvpPkey> P256Pkey(const json& jwk, absl::string_view where, json* normalized) {
  absl::StatusOr<std::string> x = RequiredBase64Url(jwk, "x", where);
  if (!x.ok()) return x.status();
  absl::StatusOr<std::string> y = RequiredBase64Url(jwk, "y", where);
  if (!y.ok()) return y.status();
  // RFC 7518 section 6.2.1.2: the full coordinate size, leading zeros kept.
  for (const auto& [name, bytes] : {std::pair{"x", &*x}, std::pair{"y", &*y}}) {
    if (bytes->size() != internal::kP256ScalarBytes) {
      return absl::InvalidArgumentError(absl::StrCat(Field(where, name), ": ", bytes->size(),
                                                     " bytes, want ", internal::kP256ScalarBytes));
    }
  }
  // SEC 1 uncompressed point: 0x04 || x || y.
  std::string point = absl::StrCat("\x04", *x, *y);
  UniqueOsslParamBld builder(OSSL_PARAM_BLD_new());
  if (builder == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                      SN_X9_62_prime256v1, 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return absl::InternalError(absl::StrCat(where, ": ", DrainOpenSslErrors()));
  }
  absl::StatusOr<UniqueEvpPkey> pkey = PublicPkeyFromParams("EC", builder.get(), where);
  if (!pkey.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": (x, y) is not a valid P-256 public point: ", pkey.status().message()));
  }
  (*normalized)["crv"] = "P-256";
  (*normalized)["x"] = Base64UrlEncode(*x);
  (*normalized)["y"] = Base64UrlEncode(*y);
  return pkey;
}

absl::Status CheckKid(absl::string_view kid) {
  if (kid.empty() || kid.size() > kMaxKidBytes || !std::all_of(kid.begin(), kid.end(), [](char c) {
        return absl::ascii_isgraph(static_cast<unsigned char>(c));
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("kid: must be 1 to ", kMaxKidBytes,
                     " printable ASCII characters without spaces, got ", Quote(kid)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view AlgorithmName(Algorithm alg) {
  switch (alg) {
    case Algorithm::kRs256:
      return "RS256";
    case Algorithm::kEs256:
      return "ES256";
  }
  return "?";
}

PublicKey::PublicKey(std::string kid, Algorithm alg, KeyType type, UniqueEvpPkey pkey,
                     nlohmann::json jwk)
    : kid_(std::move(kid)), alg_(alg), type_(type), pkey_(std::move(pkey)), jwk_(std::move(jwk)) {}

absl::StatusOr<PublicKey> PublicKeyFromJwk(const nlohmann::json& jwk) {
  return internal::PublicKeyFromJwkAt(jwk, "jwk");
}

absl::StatusOr<PublicKey> internal::PublicKeyFromJwkAt(const json& jwk, absl::string_view where) {
  if (!jwk.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": not a JSON object (", jwk.type_name(), ")"));
  }
  absl::StatusOr<const std::string*> kty = OptionalString(jwk, "kty", where);
  if (!kty.ok()) return kty.status();
  if (*kty == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(Field(where, "kty"), ": missing"));
  }
  absl::StatusOr<const std::string*> use = OptionalString(jwk, "use", where);
  if (!use.ok()) return use.status();
  absl::StatusOr<const std::string*> alg_name = OptionalString(jwk, "alg", where);
  if (!alg_name.ok()) return alg_name.status();
  absl::StatusOr<const std::string*> kid = OptionalString(jwk, "kid", where);
  if (!kid.ok()) return kid.status();

  // Kinds of key we do not use are UNIMPLEMENTED, so a JWKS can carry them.
  const bool is_rsa = **kty == "RSA";
  const bool is_ec = **kty == "EC";
  if (!is_rsa && !is_ec) {
    return absl::UnimplementedError(
        absl::StrCat(Field(where, "kty"), ": ", Quote(**kty), " is not supported"));
  }
  if (*use != nullptr && **use != "sig") {
    return absl::UnimplementedError(
        absl::StrCat(Field(where, "use"), ": ", Quote(**use), " is not \"sig\""));
  }
  std::optional<Algorithm> alg;
  if (*alg_name != nullptr) {
    if (**alg_name == "RS256") {
      alg = Algorithm::kRs256;
    } else if (**alg_name == "ES256") {
      alg = Algorithm::kEs256;
    } else {
      return absl::UnimplementedError(absl::StrCat(Field(where, "alg"), ": ", Quote(**alg_name),
                                                   " is not supported (RS256, ES256)"));
    }
  }

  json normalized = json::object();
  normalized["kty"] = **kty;
  if (*kid != nullptr) normalized["kid"] = **kid;
  normalized["use"] = "sig";
  absl::StatusOr<UniqueEvpPkey> pkey;
  KeyType type;
  if (is_rsa) {
    if (alg.has_value() && *alg != Algorithm::kRs256) {
      return absl::InvalidArgumentError(
          absl::StrCat(Field(where, "alg"), ": ", Quote(**alg_name), " contradicts kty \"RSA\""));
    }
    alg = Algorithm::kRs256;
    type = KeyType::kRsa;
    pkey = RsaPkey(jwk, where, &normalized);
  } else {
    if (alg.has_value() && *alg != Algorithm::kEs256) {
      return absl::InvalidArgumentError(
          absl::StrCat(Field(where, "alg"), ": ", Quote(**alg_name), " contradicts kty \"EC\""));
    }
    absl::StatusOr<const std::string*> crv = OptionalString(jwk, "crv", where);
    if (!crv.ok()) return crv.status();
    if (*crv == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(Field(where, "crv"), ": missing"));
    }
    if (**crv != "P-256") {
      if (alg.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(Field(where, "crv"), ": ", Quote(**crv),
                                                       " is not \"P-256\", which ES256 requires"));
      }
      return absl::UnimplementedError(
          absl::StrCat(Field(where, "crv"), ": ", Quote(**crv), " is not supported"));
    }
    alg = Algorithm::kEs256;
    type = KeyType::kEc;
    pkey = P256Pkey(jwk, where, &normalized);
  }
  if (!pkey.ok()) return pkey.status();
  normalized["alg"] = std::string(AlgorithmName(*alg));
  return PublicKey(*kid == nullptr ? std::string() : **kid, *alg, type, *std::move(pkey),
                   std::move(normalized));
}

absl::Status JwkSet::Add(PublicKey key) {
  if (key.kid().empty()) {
    return absl::InvalidArgumentError("kid: missing; a token could never select this key");
  }
  if (keys_.contains(key.kid())) {
    return absl::AlreadyExistsError(absl::StrCat("kid: ", Quote(key.kid()), " appears twice"));
  }
  std::string kid = key.kid();
  keys_.emplace(std::move(kid), std::move(key));
  return absl::OkStatus();
}

const PublicKey* JwkSet::Find(absl::string_view kid) const {
  const auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : &it->second;
}

std::vector<std::string> JwkSet::kids() const {
  std::vector<std::string> out;
  out.reserve(keys_.size());
  for (const auto& [kid, key] : keys_) out.push_back(kid);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<JwkSet> ParseJwks(absl::string_view text) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("jwks: not valid JSON");
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jwks: not a JSON object (", doc.type_name(), ")"));
  }
  const auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) {
    return absl::InvalidArgumentError("jwks.keys: missing or not an array");
  }
  JwkSet set;
  size_t skipped = 0;
  for (size_t i = 0; i < keys->size(); ++i) {
    const std::string where = absl::StrCat("jwks.keys[", i, "]");
    absl::StatusOr<PublicKey> key = internal::PublicKeyFromJwkAt((*keys)[i], where);
    if (absl::IsUnimplemented(key.status())) {
      ++skipped;
      continue;
    }
    if (!key.ok()) return absl::InvalidArgumentError(key.status().message());
    if (absl::Status added = set.Add(*std::move(key)); !added.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".", added.message()));
    }
  }
  if (set.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jwks: no usable key (", skipped, " of unsupported kind skipped)"));
  }
  return set;
}

std::string ToJwksJson(const JwkSet& keys) {
  json out = json::object();
  json& array = out["keys"] = json::array();
  for (const std::string& kid : keys.kids()) array.push_back(keys.Find(kid)->jwk());
  // Replace, not throw, on invalid UTF-8: kids we publish are checked ASCII
  // and parsed JWKs are valid UTF-8, so this only guards against the
  // impossible.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

SigningKey::SigningKey(std::string kid, UniqueEvpPkey pkey, nlohmann::json public_jwk)
    : kid_(std::move(kid)), pkey_(std::move(pkey)), public_jwk_(std::move(public_jwk)) {}

absl::StatusOr<SigningKey> SigningKey::Generate(std::string kid) {
  if (absl::Status ok = CheckKid(kid); !ok.ok()) return ok;
  UniqueEvpPkey pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", SN_X9_62_prime256v1));
  if (pkey == nullptr) {
    return absl::InternalError(
        absl::StrCat("signing key: P-256 key generation failed: ", DrainOpenSslErrors()));
  }
  return FromEvpPkey(std::move(pkey), std::move(kid));
}

absl::StatusOr<SigningKey> SigningKey::FromPem(absl::string_view pem, std::string kid) {
  if (absl::Status ok = CheckKid(kid); !ok.ok()) return ok;
  if (pem.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("signing key: PEM is ", pem.size(), " bytes, more than any P-256 key"));
  }
  UniqueBio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) {
    return absl::InternalError(absl::StrCat("signing key: ", DrainOpenSslErrors()));
  }
  // Without a callback OpenSSL would prompt on the terminal for the
  // passphrase of an encrypted key; a server must fail instead.
  pem_password_cb* refuse_passphrase = [](char*, int, int, void*) { return -1; };
  UniqueEvpPkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("signing key: not an unencrypted PEM private key: ", DrainOpenSslErrors()));
  }
  return FromEvpPkey(std::move(pkey), std::move(kid));
}

absl::StatusOr<SigningKey> SigningKey::FromEvpPkey(UniqueEvpPkey pkey, std::string kid) {
  if (EVP_PKEY_is_a(pkey.get(), "EC") != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "signing key: ", EVP_PKEY_get0_type_name(pkey.get()), " key, ES256 needs EC P-256"));
  }
  char group[80] = {};
  size_t group_len = 0;
  if (EVP_PKEY_get_group_name(pkey.get(), group, sizeof(group), &group_len) != 1 ||
      OBJ_sn2nid(group) != NID_X9_62_prime256v1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("signing key: curve ", Quote(group), " is not P-256"));
  }
  BIGNUM* x_raw = nullptr;
  BIGNUM* y_raw = nullptr;
  const int got_x = EVP_PKEY_get_bn_param(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x_raw);
  const int got_y = EVP_PKEY_get_bn_param(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y_raw);
  UniqueBignum x(x_raw);
  UniqueBignum y(y_raw);
  if (got_x != 1 || got_y != 1) {
    return absl::InternalError(
        absl::StrCat("signing key: reading the public point: ", DrainOpenSslErrors()));
  }
  json jwk = {
      {"kty", "EC"},
      {"crv", "P-256"},
      {"x", Base64UrlEncode(BignumBytes(x.get(), internal::kP256ScalarBytes))},
      {"y", Base64UrlEncode(BignumBytes(y.get(), internal::kP256ScalarBytes))},
      {"kid", kid},
      {"alg", "ES256"},
      {"use", "sig"},
  };
  return SigningKey(std::move(kid), std::move(pkey), std::move(jwk));
}

std::string SigningKey::PrivatePem() const {
  UniqueBio bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0,
                                                 nullptr, nullptr) != 1) {
    ERR_clear_error();
    return std::string();
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<PublicKey> SigningKey::ToPublicKey() const { return PublicKeyFromJwk(public_jwk_); }

absl::StatusOr<std::string> SigningKey::Sign(absl::string_view signing_input) const {
  UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey_.get()) != 1) {
    return absl::InternalError(absl::StrCat("sign: ", DrainOpenSslErrors()));
  }
  std::string der(static_cast<size_t>(EVP_PKEY_get_size(pkey_.get())), '\0');
  size_t der_len = der.size();
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &der_len,
                     reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1) {
    return absl::InternalError(absl::StrCat("sign: ", DrainOpenSslErrors()));
  }
  der.resize(der_len);
  return internal::EcdsaDerToJose(der);
}

}  // namespace pettube::auth
