#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/credentials/authenticator.h"

namespace pettube::catalog {

// Verified callers by bearer token, so the repeated calls of one client
// (a player listing, a watch reconnecting) skip the ES256 check, which is
// most of a GetMedia's CPU. An entry lives until the token expires or
// `max_age` passes, whichever is first; a token that failed to verify is
// never cached. Bounded: past `capacity` entries the cache starts over.
//
// Shares the authenticator (must outlive the cache). Thread-safe.
class CallerCache {
 public:
  struct Options {
    size_t capacity = 10000;
    absl::Duration max_age = absl::Minutes(1);
  };

  CallerCache(const auth::Authenticator* authenticator, Options options);

  // As Authenticator::Authorize: UNAUTHENTICATED, UNAVAILABLE (keys
  // unreachable), PERMISSION_DENIED without `scope`.
  absl::StatusOr<auth::Caller> Authorize(const grpc::ServerContextBase& context,
                                         absl::string_view scope) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    auth::Caller caller;
    absl::Time valid_until;
  };

  const auth::Authenticator* const authenticator_;
  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::catalog
