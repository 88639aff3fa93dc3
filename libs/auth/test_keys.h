#pragma once

// Test-only helpers: RSA keys and RS256 signatures made with OpenSSL
// directly (we never sign RS256 in production), HMAC for forging
// algorithm-confusion tokens, and assembling compact tokens by hand.

#include <string>

#include "absl/strings/string_view.h"
#include "libs/auth/jwk.h"
#include "nlohmann/json.hpp"

namespace pettube::auth::testing {

// A fresh RSA key of `bits` bits with e = 65537. Aborts the test on failure.
UniqueEvpPkey GenerateRsaKey(int bits);

// The public JWK of `rsa`, built from its n and e:
// {"kty":"RSA","alg":"RS256","use":"sig","kid":kid,"n":..,"e":..}.
nlohmann::json RsaPublicJwk(EVP_PKEY* rsa, absl::string_view kid);

// RS256 (PKCS#1 v1.5, SHA-256) signature of `data` by `rsa`.
std::string Rs256Sign(EVP_PKEY* rsa, absl::string_view data);

// HMAC-SHA-256 of `data` keyed with `key`.
std::string HmacSha256(absl::string_view key, absl::string_view data);

// The SubjectPublicKeyInfo PEM of `pkey`: what an attacker would use as an
// HMAC secret in an algorithm-confusion attack.
std::string PublicKeyPem(EVP_PKEY* pkey);

// b64(header.dump()) "." b64(claims.dump()): the JWS signing input.
std::string SigningInput(const nlohmann::json& header, const nlohmann::json& claims);

// signing_input "." b64(signature).
std::string Compact(absl::string_view signing_input, absl::string_view signature);

}  // namespace pettube::auth::testing
