#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/auth/jwk.h"
#include "proto/pettube/auth/v1/auth.pb.h"

namespace pettube::auth {

// The development identity provider: an OIDC issuer with its own ES256 key
// that mints ID tokens for any user name. For the local stack and tests
// only: it exists only when auth-token-exchange runs with --dev_idp, and its
// tokens are trusted only then. Its key lives in a file (0600) in the data
// directory so tokens survive restarts.
// Immutable after Open; thread-safe.
class DevIdentityProvider {
 public:
  static constexpr char kDefaultIssuer[] = "https://dev-idp.pettube.invalid";
  static constexpr char kDefaultClientId[] = "pettube-dev";

  static absl::StatusOr<std::unique_ptr<DevIdentityProvider>> Open(const std::string& key_file,
                                                                   std::string issuer,
                                                                   std::string client_id);

  // INVALID_ARGUMENT for an empty or overlong user, or a lifetime outside
  // 1 min to 24 h.
  absl::StatusOr<v1::MintIdTokenResponse> Mint(const v1::MintIdTokenRequest& request,
                                               absl::Time now) const;

  std::string JwksJson() const { return jwks_json_; }
  const std::string& issuer() const { return issuer_; }
  const std::string& client_id() const { return client_id_; }

 private:
  DevIdentityProvider(SigningKey key, std::string issuer, std::string client_id,
                      std::string jwks_json)
      : key_(std::move(key)),
        issuer_(std::move(issuer)),
        client_id_(std::move(client_id)),
        jwks_json_(std::move(jwks_json)) {}

  SigningKey key_;
  std::string issuer_;
  std::string client_id_;
  std::string jwks_json_;
};

}  // namespace pettube::auth
