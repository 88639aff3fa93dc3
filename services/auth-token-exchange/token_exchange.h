#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/pettube/auth/v1/auth.pb.h"
#include "services/auth-token-exchange/auth_store.h"
#include "services/auth-token-exchange/key_manager.h"
#include "services/auth-token-exchange/trusted_issuers.h"
#include "services/auth-token-exchange/workload_clients.h"

namespace pettube::auth {

// The rules of the exchange (RFC 8693 shaped): a verified third-party ID
// token, or workload client credentials, in; a short-lived PetTube access
// token signed by our current key out. No gRPC here.
// Thread-safe; the collaborators must outlive it.
class TokenExchange {
 public:
  struct Options {
    // "iss" of our access tokens; services verify against it.
    std::string issuer = "pettube-auth";
    // "aud" when the request names none.
    std::string default_audience = "pettube";
    // Audiences a caller may ask for.
    std::vector<std::string> audiences = {"pettube"};
    absl::Duration default_lifetime = absl::Minutes(15);
    absl::Duration min_lifetime = absl::Minutes(15);
    absl::Duration max_lifetime = absl::Hours(12);
    // What a person may be granted; the default when none is asked for.
    std::vector<std::string> user_scopes = {"media.upload", "media.read", "media.write"};
  };

  static constexpr char kIdTokenType[] = "urn:ietf:params:oauth:token-type:id_token";
  static constexpr char kJwtType[] = "urn:ietf:params:oauth:token-type:jwt";
  static constexpr char kAccessTokenType[] = "urn:ietf:params:oauth:token-type:access_token";

  TokenExchange(Options options, TrustedIssuers* issuers, AuthStore* store, KeyManager* keys,
                const WorkloadClients* workloads);

  // INVALID_ARGUMENT (token type, scope syntax, lifetime, audience),
  // UNAUTHENTICATED (the ID token, with the reason), PERMISSION_DENIED (a
  // scope people may not have), UNAVAILABLE (issuer keys unreachable).
  absl::StatusOr<v1::ExchangeTokenResponse> Exchange(const v1::ExchangeTokenRequest& request,
                                                     absl::Time now);
  absl::StatusOr<v1::ExchangeTokenResponse> IssueWorkloadToken(
      const v1::IssueWorkloadTokenRequest& request, absl::Time now);

 private:
  absl::StatusOr<absl::Duration> Lifetime(const google::protobuf::Duration* requested) const;
  absl::StatusOr<v1::ExchangeTokenResponse> Issue(const v1::Identity& identity,
                                                  const std::vector<std::string>& scopes,
                                                  const std::string& audience,
                                                  absl::Duration lifetime, absl::Time now);

  const Options options_;
  TrustedIssuers* const issuers_;
  AuthStore* const store_;
  KeyManager* const keys_;
  const WorkloadClients* const workloads_;
};

}  // namespace pettube::auth
