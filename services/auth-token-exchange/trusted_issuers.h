#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/jwt.h"
#include "nlohmann/json.hpp"
#include "services/auth-token-exchange/jwks_fetcher.h"

namespace pettube::auth {

// An OpenID Connect provider whose ID tokens we accept.
struct IssuerConfig {
  std::string issuer;     // exact "iss"
  std::string client_id;  // required "aud": our client id at that provider
  std::string jwks_uri;   // https URL, loopback http URL, or file path
};

// Parses a trusted-issuers file: a JSON array of
// {"issuer": ..., "client_id": ..., "jwks_uri": ...}. INVALID_ARGUMENT names
// the entry and field.
absl::StatusOr<std::vector<IssuerConfig>> ParseIssuersFile(absl::string_view json);

// The identity providers we trust and their key sets. A token's unverified
// "iss" picks the provider; its JWKS, cached, verifies the token. A token
// naming an unknown kid triggers one refresh of that provider's JWKS, at most
// once per `min_refresh_interval` (the kid comes from the caller, so a flood
// of made-up kids cannot make us hammer the provider).
// Thread-safe.
class TrustedIssuers {
 public:
  TrustedIssuers(JwksFetcher* fetcher, absl::Duration min_refresh_interval);

  // Trust `config`; its JWKS is fetched when first needed.
  void Add(const IssuerConfig& config) ABSL_LOCKS_EXCLUDED(mu_);
  // Trust an issuer whose keys come from this process (the development
  // identity provider).
  void AddLocal(const IssuerConfig& config, std::function<std::string()> jwks_json)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Verifies an OIDC ID token fully (signature by the issuer's key, iss,
  // aud = the issuer's client id, exp/nbf/iat with skew) and returns its
  // claims. UNAUTHENTICATED naming the reason; UNAVAILABLE when the issuer's
  // keys cannot be fetched now.
  absl::StatusOr<nlohmann::json> Verify(absl::string_view id_token, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Issuer {
    IssuerConfig config;
    std::function<std::string()> local_jwks;
    std::shared_ptr<const Verifier> verifier;
    absl::Time last_fetch = absl::InfinitePast();
  };
  absl::StatusOr<std::shared_ptr<const Verifier>> Refresh(Issuer& issuer, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JwksFetcher* const fetcher_;
  const absl::Duration min_refresh_interval_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Issuer> issuers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::auth
