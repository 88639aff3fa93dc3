#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/jwt.h"

namespace pettube::auth {

// Who is calling, from a verified PetTube access token.
struct Caller {
  std::string identity;  // identity id ("sub")
  absl::flat_hash_set<std::string> scopes;
  bool workload = false;
  std::string token_id;  // "jti", for logs
  absl::Time expire_time;

  bool HasScope(absl::string_view scope) const { return scopes.contains(scope); }
};

// The server-side check every PetTube service runs on each call: verifies
// the bearer access token locally with auth-token-exchange's public keys
// (fetched once, cached; fetched again only when a token names a key we do
// not have, at most once per `min_refresh_interval`), then enforces the
// scope the method needs. No call to auth-token-exchange per request.
// Thread-safe.
class Authenticator {
 public:
  // Returns the JWKS JSON of auth-token-exchange (GrpcJwksSource below).
  using JwksSource = std::function<absl::StatusOr<std::string>()>;

  struct Options {
    std::string issuer = "pettube-auth";
    std::string audience = "pettube";
    absl::Duration min_refresh_interval = absl::Seconds(10);
  };

  Authenticator(Options options, JwksSource source);

  // Fetches the keys now rather than on the first call (start-up).
  absl::Status Prefetch() const ABSL_LOCKS_EXCLUDED(mu_);

  // UNAUTHENTICATED (no/garbled "authorization: Bearer" header, or a token
  // that does not verify, with the reason), UNAVAILABLE (keys unreachable).
  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context) const
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Caller> AuthenticateToken(absl::string_view token) const ABSL_LOCKS_EXCLUDED(mu_);

  // Authenticate, then PERMISSION_DENIED unless the token grants `scope`.
  absl::StatusOr<Caller> Authorize(const grpc::ServerContextBase& context,
                                   absl::string_view scope) const;

 private:
  absl::StatusOr<std::shared_ptr<const Verifier>> Refresh(absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const JwksSource source_;
  mutable absl::Mutex mu_;
  mutable std::shared_ptr<const Verifier> verifier_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time last_fetch_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// Fetches the JWKS from auth-token-exchange's TokenExchange.GetJwks.
Authenticator::JwksSource GrpcJwksSource(std::shared_ptr<grpc::Channel> channel);

}  // namespace pettube::auth
