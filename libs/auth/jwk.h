#pragma once

// Keys for JWS: public keys parsed from JWKs (Google's JWKS, the dev identity
// provider's, our own) and the ES256 key auth-token-exchange signs with.
//
//   absl::StatusOr<JwkSet> google = ParseJwks(body_of_certs_url);
//   absl::StatusOr<SigningKey> key = SigningKey::FromPem(pem, "at-2026-11");
//   std::string published = ToJwksJson(our_public_keys);

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace pettube::auth {

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using UniqueEvpPkey = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// The JWS algorithms we accept. Deliberately two: RS256 is what Google signs
// ID tokens with, ES256 what we sign access tokens with. No HMAC (a verifier
// holding the secret could mint tokens) and no "none".
enum class Algorithm { kRs256, kEs256 };

// "RS256" or "ES256".
absl::string_view AlgorithmName(Algorithm alg);

enum class KeyType { kRsa, kEc };

class PublicKey;

namespace internal {
// PublicKeyFromJwk with error messages naming `where` ("jwks.keys[2]").
absl::StatusOr<PublicKey> PublicKeyFromJwkAt(const nlohmann::json& jwk, absl::string_view where);
}  // namespace internal

// A public key that verifies JWS signatures, with the JWK metadata a token
// selects it by (kid) and the one algorithm it may be used with (alg). The
// algorithm belongs to the key, never to the token: that is what defeats
// "alg" substitution attacks.
//
// Owns its EVP_PKEY. Move-only and immutable; const methods are thread-safe
// (OpenSSL 3 allows concurrent read-only use of an EVP_PKEY).
class PublicKey {
 public:
  PublicKey(PublicKey&&) = default;
  PublicKey& operator=(PublicKey&&) = default;

  // The JWK "kid"; empty if the JWK had none.
  const std::string& kid() const { return kid_; }
  Algorithm alg() const { return alg_; }
  KeyType type() const { return type_; }
  // Borrowed; valid while this PublicKey lives.
  EVP_PKEY* pkey() const { return pkey_.get(); }
  // The public JWK: kty, kid (if any), alg, use "sig", and n/e or crv/x/y.
  // Never contains private members, whatever the input JWK held.
  const nlohmann::json& jwk() const { return jwk_; }

 private:
  friend absl::StatusOr<PublicKey> internal::PublicKeyFromJwkAt(const nlohmann::json& jwk,
                                                                absl::string_view where);

  PublicKey(std::string kid, Algorithm alg, KeyType type, UniqueEvpPkey pkey, nlohmann::json jwk);

  std::string kid_;
  Algorithm alg_;
  KeyType type_;
  UniqueEvpPkey pkey_;
  nlohmann::json jwk_;
};

// Parses one public JWK (RFC 7517/7518):
//   RSA: "n", "e"; 2048 to 8192-bit modulus, odd exponent. alg RS256.
//   EC:  "crv" "P-256", "x" and "y" of 32 bytes each; OpenSSL checks that the
//        point is on the curve. alg ES256.
// "alg" may be absent (then it follows from kty/crv); "use", if present, must
// be "sig". Errors:
//   UNIMPLEMENTED     a key we do not handle: kty other than RSA/EC, alg
//                     other than RS256/ES256, use other than "sig", EC curve
//                     other than P-256 when alg is absent. ParseJwks skips
//                     these.
//   INVALID_ARGUMENT  a key of a supported kind that is malformed or weak:
//                     missing or non-base64url members, short modulus, point
//                     off the curve, alg that contradicts kty or crv.
absl::StatusOr<PublicKey> PublicKeyFromJwk(const nlohmann::json& jwk);

// Public keys by kid: what a Verifier looks a token's key up in.
// Move-only; const methods are thread-safe.
class JwkSet {
 public:
  JwkSet() = default;
  JwkSet(JwkSet&&) = default;
  JwkSet& operator=(JwkSet&&) = default;

  // INVALID_ARGUMENT if the key has no kid (a token could never select it);
  // ALREADY_EXISTS if the kid is taken (which key verifies would be a guess).
  absl::Status Add(PublicKey key);

  // The key with this kid, or nullptr. Borrowed; valid while the set lives
  // and is not modified.
  const PublicKey* Find(absl::string_view kid) const;

  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }
  // The kids, sorted.
  std::vector<std::string> kids() const;

 private:
  absl::flat_hash_map<std::string, PublicKey> keys_;
};

// Parses a JWK Set document ({"keys": [...]}, e.g. Google's
// https://www.googleapis.com/oauth2/v3/certs). Keys PublicKeyFromJwk calls
// UNIMPLEMENTED are skipped, so an IdP adding an encryption key or a new
// algorithm does not break us. INVALID_ARGUMENT, naming the key's index, if
// the document is not JSON or has no "keys" array, if any supported key is
// malformed (refusing the whole document keeps the caller on its last good
// set rather than silently dropping a key tokens are signed with), if a kid
// is missing or repeated, or if no usable key remains.
absl::StatusOr<JwkSet> ParseJwks(absl::string_view json);

// {"keys":[...]} with the public JWK of every key in `keys`, sorted by kid:
// what auth-token-exchange serves at its JWKS endpoint.
std::string ToJwksJson(const JwkSet& keys);

// An ES256 (ECDSA P-256, SHA-256) private key: what auth-token-exchange signs
// access tokens with. Owns its EVP_PKEY. Move-only and immutable; const
// methods are thread-safe.
class SigningKey {
 public:
  SigningKey(SigningKey&&) = default;
  SigningKey& operator=(SigningKey&&) = default;

  // A fresh random P-256 key. INVALID_ARGUMENT if `kid` is empty.
  static absl::StatusOr<SigningKey> Generate(std::string kid);

  // Loads an unencrypted PEM private key (PKCS#8 "PRIVATE KEY" or SEC1 "EC
  // PRIVATE KEY"), as written by PrivatePem() or `openssl genpkey`.
  // INVALID_ARGUMENT if it does not parse, is encrypted, or is not P-256.
  static absl::StatusOr<SigningKey> FromPem(absl::string_view pem, std::string kid);

  const std::string& kid() const { return kid_; }

  // The private key as unencrypted PKCS#8 PEM. Empty only if OpenSSL fails
  // to allocate.
  std::string PrivatePem() const;

  // {"kty":"EC","crv":"P-256","x":..,"y":..,"kid":..,"alg":"ES256","use":"sig"}
  const nlohmann::json& PublicJwk() const { return public_jwk_; }

  // The matching verification key, for a JwkSet.
  absl::StatusOr<PublicKey> ToPublicKey() const;

  // ES256 over `signing_input`: the JOSE form, 64 bytes r || s (not DER).
  // INTERNAL if OpenSSL fails.
  absl::StatusOr<std::string> Sign(absl::string_view signing_input) const;

 private:
  SigningKey(std::string kid, UniqueEvpPkey pkey, nlohmann::json public_jwk);

  static absl::StatusOr<SigningKey> FromEvpPkey(UniqueEvpPkey pkey, std::string kid);

  std::string kid_;
  UniqueEvpPkey pkey_;
  nlohmann::json public_jwk_;
};

}  // namespace pettube::auth
