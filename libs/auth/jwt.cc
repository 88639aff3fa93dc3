#include "libs/auth/jwt.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/auth/base64url.h"
#include "libs/auth/openssl_util.h"
#include "libs/auth/quote.h"

namespace pettube::auth {

namespace {

using json = nlohmann::json;

// Marks Verify's unknown-kid status, so IsUnknownKeyId does not depend on
// the wording of a message.
constexpr absl::string_view kUnknownKeyIdPayloadUrl =
    "type.googleapis.com/pettube.auth.UnknownKeyId";

constexpr size_t kEs256SignatureBytes = 2 * internal::kP256ScalarBytes;

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

// Decodes one of the first two parts into a JSON object.
absl::StatusOr<json> DecodeJsonObject(absl::string_view part, absl::string_view name) {
  if (part.empty()) return absl::UnauthenticatedError(absl::StrCat("token: ", name, " is empty"));
  absl::StatusOr<std::string> bytes = Base64UrlDecode(part);
  if (!bytes.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "token: ", name,
        " is not valid base64url: ", absl::StripPrefix(bytes.status().message(), "base64url: ")));
  }
  json value = json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return absl::UnauthenticatedError(absl::StrCat("token: ", name, " is not valid JSON"));
  }
  if (!value.is_object()) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: ", name, " is not a JSON object (", value.type_name(), ")"));
  }
  return std::move(value);
}

// The header's alg if it is one we accept at all. "none" and HMAC get their
// own refusals: they are the classic forgeries, and whoever reads the log
// should see an attack, not a typo.
absl::StatusOr<Algorithm> AcceptedAlgorithm(const json& header) {
  const auto it = header.find("alg");
  if (it == header.end()) return absl::UnauthenticatedError("token: header has no alg");
  const auto* alg = it->get_ptr<const std::string*>();
  if (alg == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: header alg is not a string (", it->type_name(), ")"));
  }
  // Algorithm names are case-sensitive (RFC 7515 section 4.1.1).
  if (*alg == "RS256") return Algorithm::kRs256;
  if (*alg == "ES256") return Algorithm::kEs256;
  // ...but "None" and "hs256" are attacks on lenient parsers, so say so.
  const std::string lower = absl::AsciiStrToLower(*alg);
  if (lower == "none") {
    return absl::UnauthenticatedError(absl::StrCat(
        "token: alg ", Quote(*alg), " is refused: unsecured tokens are never accepted"));
  }
  if (absl::StartsWith(lower, "hs")) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: alg ", Quote(*alg),
                     " is refused: HMAC algorithms are never accepted (a public key is "
                     "not a shared secret)"));
  }
  return absl::UnauthenticatedError(
      absl::StrCat("token: alg ", Quote(*alg), " is not supported (RS256, ES256)"));
}

absl::StatusOr<const std::string*> RequiredString(const json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end()) {
    return absl::UnauthenticatedError(absl::StrCat("token: ", name, " is missing"));
  }
  const auto* value = it->get_ptr<const std::string*>();
  if (value == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: ", name, " is not a string (", it->type_name(), ")"));
  }
  return value;
}

// A NumericDate claim (seconds since the epoch, integer or fraction), or
// nullopt if absent. Out-of-range values saturate to the infinite past or
// future, which the comparisons then treat correctly.
absl::StatusOr<std::optional<absl::Time>> OptionalNumericDate(const json& claims,
                                                              const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end()) return std::optional<absl::Time>();
  const json& v = *it;
  if (v.is_number_unsigned()) {
    const uint64_t seconds = v.get<uint64_t>();
    if (seconds > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::optional<absl::Time>(absl::InfiniteFuture());
    }
    return std::optional<absl::Time>(absl::FromUnixSeconds(static_cast<int64_t>(seconds)));
  }
  if (v.is_number_integer()) {
    return std::optional<absl::Time>(absl::FromUnixSeconds(v.get<int64_t>()));
  }
  if (v.is_number_float() && std::isfinite(v.get<double>())) {
    return std::optional<absl::Time>(absl::UnixEpoch() + absl::Seconds(v.get<double>()));
  }
  return absl::UnauthenticatedError(
      absl::StrCat("token: ", name, " is not a number (", v.type_name(), ")"));
}

}  // namespace

absl::StatusOr<Jwt> ParseCompact(absl::string_view token, size_t max_bytes) {
  // Size first: nothing below should ever run on a megabyte of input.
  if (token.size() > max_bytes) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: ", token.size(), " bytes exceeds the ", max_bytes, "-byte limit"));
  }
  if (token.empty()) return absl::UnauthenticatedError("token: empty");
  const size_t dots = std::count(token.begin(), token.end(), '.');
  if (dots != 2) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: malformed: ", dots + 1, " parts, want 3"));
  }
  const size_t first = token.find('.');
  const size_t second = token.find('.', first + 1);

  Jwt jwt;
  absl::StatusOr<json> header = DecodeJsonObject(token.substr(0, first), "header");
  if (!header.ok()) return header.status();
  jwt.header = *std::move(header);
  absl::StatusOr<json> claims =
      DecodeJsonObject(token.substr(first + 1, second - first - 1), "payload");
  if (!claims.ok()) return claims.status();
  jwt.claims = *std::move(claims);

  const absl::string_view signature = token.substr(second + 1);
  if (signature.empty()) {
    // An unsecured JWS ("alg":"none") legitimately has an empty signature;
    // naming the alg tells the reader what was attempted.
    if (absl::StatusOr<Algorithm> alg = AcceptedAlgorithm(jwt.header); !alg.ok()) {
      return alg.status();
    }
    return absl::UnauthenticatedError("token: signature is empty");
  }
  absl::StatusOr<std::string> signature_bytes = Base64UrlDecode(signature);
  if (!signature_bytes.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: signature is not valid base64url: ",
                     absl::StripPrefix(signature_bytes.status().message(), "base64url: ")));
  }
  jwt.signature = *std::move(signature_bytes);
  jwt.signing_input.assign(token.data(), second);
  return jwt;
}

absl::Status VerifySignature(const Jwt& jwt, const PublicKey& key) {
  absl::StatusOr<Algorithm> alg = AcceptedAlgorithm(jwt.header);
  if (!alg.ok()) return alg.status();
  // The key decides the algorithm. Checking the token's claim against it
  // (rather than dispatching on it) is what makes algorithm confusion
  // impossible.
  if (*alg != key.alg()) {
    return absl::UnauthenticatedError(absl::StrCat("token: alg ", Quote(AlgorithmName(*alg)),
                                                   " does not match key ", Quote(key.kid()), " (",
                                                   AlgorithmName(key.alg()), ")"));
  }
  // RFC 7515 section 4.1.11: a recipient must reject extensions it does not
  // implement, and we implement none.
  if (jwt.header.contains("crit")) {
    return absl::UnauthenticatedError("token: crit header parameters are not supported");
  }

  absl::string_view signature = jwt.signature;
  std::string der;
  if (key.alg() == Algorithm::kEs256) {
    if (signature.size() != kEs256SignatureBytes) {
      return absl::UnauthenticatedError(absl::StrCat("token: ES256 signature is ", signature.size(),
                                                     " bytes, want ", kEs256SignatureBytes));
    }
    absl::StatusOr<std::string> converted = internal::EcdsaJoseToDer(signature);
    if (!converted.ok()) return converted.status();
    der = *std::move(converted);
    signature = der;
  } else {
    const size_t want = static_cast<size_t>(EVP_PKEY_get_size(key.pkey()));
    if (signature.size() != want) {
      return absl::UnauthenticatedError(
          absl::StrCat("token: RS256 signature is ", signature.size(), " bytes, want ", want));
    }
  }

  internal::UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pkey_ctx = nullptr;  // owned by ctx
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), &pkey_ctx, EVP_sha256(), nullptr, key.pkey()) != 1 ||
      (key.type() == KeyType::kRsa &&
       EVP_PKEY_CTX_set_rsa_padding(pkey_ctx, RSA_PKCS1_PADDING) != 1)) {
    return absl::InternalError(
        absl::StrCat("token: verifier set-up failed: ", internal::DrainOpenSslErrors()));
  }
  const int verified = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
      reinterpret_cast<const unsigned char*>(jwt.signing_input.data()), jwt.signing_input.size());
  if (verified != 1) {
    // 0 is a bad signature, < 0 one OpenSSL could not even decode: both are
    // the sender's fault, and neither may leave errors queued.
    ERR_clear_error();
    return absl::UnauthenticatedError(absl::StrCat("token: signature does not verify with key ",
                                                   Quote(key.kid()), " (", AlgorithmName(key.alg()),
                                                   ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateClaims(const nlohmann::json& claims, const ValidationPolicy& policy,
                            absl::Time now) {
  // An empty audience would accept tokens with "aud": "" or minted for
  // nobody in particular.
  if (policy.audience.empty()) {
    return absl::FailedPreconditionError("policy.audience: must not be empty");
  }
  if (!claims.is_object()) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: claims are not a JSON object (", claims.type_name(), ")"));
  }

  absl::StatusOr<const std::string*> iss = RequiredString(claims, "iss");
  if (!iss.ok()) return iss.status();
  if (std::find(policy.issuers.begin(), policy.issuers.end(), **iss) == policy.issuers.end()) {
    return absl::UnauthenticatedError(absl::StrCat("token: iss ", Quote(**iss), " is not trusted"));
  }

  const auto aud = claims.find("aud");
  if (aud == claims.end()) return absl::UnauthenticatedError("token: aud is missing");
  if (const auto* single = aud->get_ptr<const std::string*>(); single != nullptr) {
    if (*single != policy.audience) {
      return absl::UnauthenticatedError(
          absl::StrCat("token: aud ", Quote(*single), " is not ", Quote(policy.audience)));
    }
  } else if (aud->is_array()) {
    const bool found = std::any_of(aud->begin(), aud->end(), [&](const json& entry) {
      const auto* value = entry.get_ptr<const std::string*>();
      return value != nullptr && *value == policy.audience;
    });
    if (!found) {
      return absl::UnauthenticatedError(absl::StrCat("token: aud array (", aud->size(),
                                                     " entries) does not contain ",
                                                     Quote(policy.audience)));
    }
  } else {
    return absl::UnauthenticatedError(
        absl::StrCat("token: aud is not a string or an array (", aud->type_name(), ")"));
  }

  absl::StatusOr<std::optional<absl::Time>> exp = OptionalNumericDate(claims, "exp");
  if (!exp.ok()) return exp.status();
  if (!exp->has_value()) return absl::UnauthenticatedError("token: exp is missing");
  if (!(**exp > now - policy.clock_skew)) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: expired at ", FormatUtc(**exp), " (now ", FormatUtc(now), ")"));
  }

  absl::StatusOr<std::optional<absl::Time>> nbf = OptionalNumericDate(claims, "nbf");
  if (!nbf.ok()) return nbf.status();
  if (nbf->has_value() && **nbf > now + policy.clock_skew) {
    return absl::UnauthenticatedError(absl::StrCat("token: not valid before ", FormatUtc(**nbf),
                                                   " (nbf; now ", FormatUtc(now), ")"));
  }

  absl::StatusOr<std::optional<absl::Time>> iat = OptionalNumericDate(claims, "iat");
  if (!iat.ok()) return iat.status();
  if (!iat->has_value() && policy.require_iat) {
    return absl::UnauthenticatedError("token: iat is missing");
  }
  if (iat->has_value() && **iat > now + policy.clock_skew) {
    return absl::UnauthenticatedError(absl::StrCat(
        "token: issued in the future at ", FormatUtc(**iat), " (iat; now ", FormatUtc(now), ")"));
  }

  if (policy.max_lifetime != absl::InfiniteDuration()) {
    const absl::Time start = iat->value_or(now);
    const absl::Duration lifetime = **exp - start;
    if (lifetime > policy.max_lifetime) {
      return absl::UnauthenticatedError(
          absl::StrCat("token: lifetime ", absl::FormatDuration(lifetime), " (exp - ",
                       iat->has_value() ? "iat" : "now", ") exceeds the ",
                       absl::FormatDuration(policy.max_lifetime), " limit"));
    }
  }

  absl::StatusOr<const std::string*> sub = RequiredString(claims, "sub");
  if (!sub.ok()) return sub.status();
  if ((*sub)->empty()) return absl::UnauthenticatedError("token: sub is empty");
  return absl::OkStatus();
}

bool IsUnknownKeyId(const absl::Status& status) {
  return absl::IsUnauthenticated(status) && status.GetPayload(kUnknownKeyIdPayloadUrl).has_value();
}

absl::StatusOr<Verifier> Verifier::Create(JwkSet keys, ValidationPolicy policy) {
  if (policy.issuers.empty()) {
    return absl::InvalidArgumentError("policy.issuers: must not be empty");
  }
  for (size_t i = 0; i < policy.issuers.size(); ++i) {
    if (policy.issuers[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("policy.issuers[", i, "]: must not be empty"));
    }
  }
  if (policy.audience.empty()) {
    return absl::InvalidArgumentError("policy.audience: must not be empty");
  }
  if (policy.clock_skew < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("policy.clock_skew: must not be negative, got ",
                                                   absl::FormatDuration(policy.clock_skew)));
  }
  if (policy.max_lifetime <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("policy.max_lifetime: must be positive, got ",
                                                   absl::FormatDuration(policy.max_lifetime)));
  }
  if (policy.max_token_bytes == 0) {
    return absl::InvalidArgumentError("policy.max_token_bytes: must be positive");
  }
  return Verifier(std::move(keys), std::move(policy));
}

absl::StatusOr<nlohmann::json> Verifier::Verify(absl::string_view token, absl::Time now) const {
  absl::StatusOr<Jwt> jwt = ParseCompact(token, policy_.max_token_bytes);
  if (!jwt.ok()) return jwt.status();
  // Refuse "none", HMAC and unknown algorithms before the kid lookup, so
  // such junk is never reported as an unknown kid worth a JWKS refresh.
  if (absl::StatusOr<Algorithm> alg = AcceptedAlgorithm(jwt->header); !alg.ok()) {
    return alg.status();
  }
  const auto kid = jwt->header.find("kid");
  if (kid == jwt->header.end()) return absl::UnauthenticatedError("token: header has no kid");
  const auto* kid_value = kid->get_ptr<const std::string*>();
  if (kid_value == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: header kid is not a string (", kid->type_name(), ")"));
  }
  const PublicKey* key = keys_.Find(*kid_value);
  if (key == nullptr) {
    absl::Status unknown =
        absl::UnauthenticatedError(absl::StrCat("token: unknown key id ", Quote(*kid_value)));
    unknown.SetPayload(kUnknownKeyIdPayloadUrl, absl::Cord(*kid_value));
    return unknown;
  }
  if (absl::Status verified = VerifySignature(*jwt, *key); !verified.ok()) return verified;
  if (absl::Status valid = ValidateClaims(jwt->claims, policy_, now); !valid.ok()) {
    return valid;
  }
  return std::move(jwt->claims);
}

absl::StatusOr<std::string> SignCompact(const nlohmann::json& claims, const SigningKey& key) {
  if (!claims.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("claims: not a JSON object (", claims.type_name(), ")"));
  }
  const json header = {{"alg", "ES256"}, {"typ", "JWT"}, {"kid", key.kid()}};
  std::string payload;
  // dump() throws on strings that are not UTF-8; a token must not silently
  // carry replacement characters, so that is the caller's error.
  try {
    payload = claims.dump();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("claims: ", e.what()));
  }
  std::string token = absl::StrCat(Base64UrlEncode(header.dump()), ".", Base64UrlEncode(payload));
  absl::StatusOr<std::string> signature = key.Sign(token);
  if (!signature.ok()) return signature.status();
  absl::StrAppend(&token, ".", Base64UrlEncode(*signature));
  return token;
}

}  // namespace pettube::auth
