#pragma once

// Compact JWS / JWT (RFC 7515, 7519): parsing, signature verification,
// claim validation and signing. auth-token-exchange verifies third-party ID
// tokens (Google: RS256) with it and signs our own ES256 access tokens; every
// service verifies those access tokens locally with a Verifier.
//
//   ValidationPolicy policy;
//   policy.issuers = {"https://auth.pettube.dev"};
//   policy.audience = "pettube";
//   absl::StatusOr<Verifier> verifier = Verifier::Create(*std::move(jwks), policy);
//   absl::StatusOr<nlohmann::json> claims = verifier->Verify(token, absl::Now());
//   if (IsUnknownKeyId(claims.status())) { /* refresh the JWKS, rate-limited */ }

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/jwk.h"
#include "nlohmann/json.hpp"

namespace pettube::auth {

// Tokens longer than this are refused before any decoding: ours are ~500
// bytes, Google ID tokens ~1 KB.
inline constexpr size_t kDefaultMaxTokenBytes = 8192;

// A compact JWS split and decoded, not yet verified: nothing in it is to be
// trusted until VerifySignature and ValidateClaims have passed.
struct Jwt {
  nlohmann::json header;  // a JSON object
  nlohmann::json claims;  // a JSON object
  // ASCII(BASE64URL(header) || '.' || BASE64URL(payload)): the signed bytes.
  std::string signing_input;
  std::string signature;  // decoded, never empty
};

// Splits and decodes "header.payload.signature". Structure only: no
// signature or claim is checked. UNAUTHENTICATED (the caller presented a bad
// credential) with a message naming the reason, e.g.
//   "token: 9000 bytes exceeds the 8192-byte limit"
//   "token: malformed: 2 parts, want 3"
//   "token: header is not valid base64url: padding '=' at offset 20 ..."
//   "token: payload is not a JSON object (array)"
//   "token: signature is empty"
//   "token: alg \"none\" is refused: unsecured tokens are never accepted"
absl::StatusOr<Jwt> ParseCompact(absl::string_view token, size_t max_bytes = kDefaultMaxTokenBytes);

// Checks the signature of `jwt` with `key`. The algorithm is the KEY's: the
// header "alg" must name it exactly, so "alg":"none", HMAC with the public
// key as secret (RS256/ES256 -> HS256 confusion) and RS256-for-an-EC-key are
// all refused before any crypto runs. Also refuses any "crit" header (we
// implement no JWS extension). ES256 signatures must be the 64-byte JOSE
// r || s; RS256 is PKCS#1 v1.5 with SHA-256. OK or UNAUTHENTICATED, e.g.
//   "token: alg \"HS256\" is refused: HMAC algorithms are never accepted"
//   "token: alg \"RS256\" does not match key \"k1\" (ES256)"
//   "token: signature does not verify with key \"k1\" (ES256)"
absl::Status VerifySignature(const Jwt& jwt, const PublicKey& key);

// What ValidateClaims requires of a token's claims.
struct ValidationPolicy {
  // Accepted "iss" values, compared exactly. Google uses both
  // "https://accounts.google.com" and "accounts.google.com".
  std::vector<std::string> issuers;
  // Required "aud" (the string, or an element of the array). Must not be
  // empty.
  std::string audience;
  // Tolerated clock difference between the issuer and us, applied to exp,
  // nbf and iat.
  absl::Duration clock_skew = absl::Seconds(60);
  // If finite, exp - iat (or exp - now without iat) may not exceed this: a
  // token minted with a far-future exp is refused even if its key is good.
  absl::Duration max_lifetime = absl::InfiniteDuration();
  // Require "iat". Google ID tokens and our access tokens always carry it.
  bool require_iat = true;
  // Tokens longer than this are refused unparsed.
  size_t max_token_bytes = kDefaultMaxTokenBytes;
};

// Checks the registered claims at `now`:
//   iss  a string in policy.issuers
//   aud  policy.audience, or an array containing it
//   exp  required, a number, exp > now - skew
//   nbf  optional, a number, nbf <= now + skew
//   iat  required if policy.require_iat, a number, iat <= now + skew
//   sub  a non-empty string
// NumericDates may be integers or fractions. UNAUTHENTICATED naming the
// claim and reason, e.g.
//   "token: expired at 2026-11-23T05:00:00Z (now 2026-11-23T05:10:00Z)"
//   "token: aud \"x\" is not \"pettube\""
//   "token: iss \"https://evil\" is not trusted"
// FAILED_PRECONDITION if policy.audience is empty (a policy bug, not a bad
// token).
absl::Status ValidateClaims(const nlohmann::json& claims, const ValidationPolicy& policy,
                            absl::Time now);

// True for the status Verifier::Verify returns when the token names a kid
// the JwkSet lacks: the one failure that fetching the issuer's JWKS again
// may cure (the issuer rotated keys). The kid is chosen by whoever sent the
// token, so refresh at most every few seconds, never per request.
bool IsUnknownKeyId(const absl::Status& status);

// Verifies tokens against a fixed key set and policy: parse, select the key
// by the header's kid, VerifySignature, ValidateClaims. Keys are parsed once,
// up front, so a Verify costs little more than the signature check itself.
//
// Immutable; Verify is thread-safe. To rotate keys build a new Verifier and
// swap a std::shared_ptr<const Verifier> under a mutex.
class Verifier {
 public:
  // INVALID_ARGUMENT naming the field if the policy is unusable: no issuers,
  // an empty issuer or audience, negative clock_skew, non-positive
  // max_lifetime or max_token_bytes.
  static absl::StatusOr<Verifier> Create(JwkSet keys, ValidationPolicy policy);

  Verifier(Verifier&&) = default;
  Verifier& operator=(Verifier&&) = default;

  // The verified claims (a JSON object), or UNAUTHENTICATED naming the
  // reason; see ParseCompact, VerifySignature, ValidateClaims, plus
  //   "token: header has no kid"
  //   "token: unknown key id \"k9\""  (IsUnknownKeyId is true)
  absl::StatusOr<nlohmann::json> Verify(absl::string_view token, absl::Time now) const;

  const JwkSet& keys() const { return keys_; }
  const ValidationPolicy& policy() const { return policy_; }

 private:
  Verifier(JwkSet keys, ValidationPolicy policy)
      : keys_(std::move(keys)), policy_(std::move(policy)) {}

  JwkSet keys_;
  ValidationPolicy policy_;
};

// Signs `claims` (a JSON object) as a compact JWS with the header
// {"alg":"ES256","kid":key.kid(),"typ":"JWT"}. INVALID_ARGUMENT if claims is
// not an object or holds a string that is not valid UTF-8; INTERNAL if
// OpenSSL fails.
absl::StatusOr<std::string> SignCompact(const nlohmann::json& claims, const SigningKey& key);

}  // namespace pettube::auth
