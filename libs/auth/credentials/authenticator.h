#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/jwt.h"
#include "libs/time/backoff.h"
#include "libs/time/clock.h"

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
// the bearer access token locally with auth-token-exchange's public keys,
// then enforces the scope the method needs. No call to auth-token-exchange
// per request.
//
// The keys are fetched off the request path, by a thread of the
// Authenticator's own: at once on construction, then every
// `refresh_interval` (retried with backoff after a failure), and early when
// a token names a key we do not have (at most once per
// `min_refresh_interval`, since the kid comes from the caller). Calls keep
// verifying with the cached keys while a fetch runs; a call that needs newer
// keys (none yet, or an unknown kid) waits for the one fetch in flight, never
// starts its own.
//
// Thread-safe. The destructor stops the thread (waiting for a fetch in
// flight); no call may be running then.
class Authenticator {
 public:
  // Returns the JWKS JSON of auth-token-exchange (GrpcJwksSource below).
  // Called on the Authenticator's thread only, one call at a time.
  using JwksSource = std::function<absl::StatusOr<std::string>()>;

  struct Options {
    std::string issuer = "pettube-auth";
    std::string audience = "pettube";
    // Unknown-kid refreshes start at most this often, so a flood of tokens
    // with made-up kids costs one fetch per interval.
    absl::Duration min_refresh_interval = absl::Seconds(10);
    // Keys are fetched again this often anyway (auth serves its JWKS with
    // max-age=300): retired keys go, new ones arrive before tokens name them.
    absl::Duration refresh_interval = absl::Minutes(5);
    // How long a call waits for the fetch in flight before giving up with
    // UNAVAILABLE (no keys) or the unknown kid's UNAUTHENTICATED.
    absl::Duration max_key_wait = absl::Seconds(5);
    // Null: real time. Tests pass a time::FakeClock.
    const time::Clock* clock = nullptr;
    // If set, called (with no lock held, from the calling threads, maybe
    // concurrently) each time a call starts waiting for a fetch in flight:
    // a metric, and how tests know callers are waiting.
    std::function<void()> on_key_wait;
  };

  Authenticator(Options options, JwksSource source);
  ~Authenticator();

  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // Waits (at most max_key_wait) for the first fetch, started by the
  // constructor, and returns how it went: UNAVAILABLE if the keys are
  // unreachable or garbled. Start-up code calls it to log a warning early.
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
  // Keys newer than `seen` (null: none yet), after waiting for the fetch in
  // flight or asking the thread for one. Returns the status of the last
  // fetch if it failed, UNAVAILABLE if a refresh is rate-limited or the wait
  // timed out.
  absl::StatusOr<std::shared_ptr<const Verifier>> AwaitNewerKeys(
      const std::shared_ptr<const Verifier>& seen) const ABSL_LOCKS_EXCLUDED(mu_);
  // Body of thread_: wait until a fetch is due or asked for, fetch without
  // the lock, publish.
  void RefreshLoop() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::shared_ptr<const Verifier>> Fetch() const ABSL_LOCKS_EXCLUDED(mu_);
  bool RefreshWantedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || refresh_requested_;
  }

  const Options options_;
  const JwksSource source_;
  const time::Clock& clock_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Verifier> verifier_ ABSL_GUARDED_BY(mu_);
  // How the last completed fetch went.
  absl::Status last_status_ ABSL_GUARDED_BY(mu_);
  // Fetches completed so far: a waiter waits for this to pass its target.
  uint64_t fetches_done_ ABSL_GUARDED_BY(mu_) = 0;
  bool fetch_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  mutable bool refresh_requested_ ABSL_GUARDED_BY(mu_) = false;
  // Start of the last fetch: the rate limit of unknown-kid refreshes.
  absl::Time last_fetch_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // When the thread fetches without being asked.
  absl::Time next_refresh_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int consecutive_failures_ ABSL_GUARDED_BY(mu_) = 0;
  time::Backoff retry_backoff_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;  // last: starts once everything above is set
};

// Fetches the JWKS from auth-token-exchange's TokenExchange.GetJwks.
Authenticator::JwksSource GrpcJwksSource(std::shared_ptr<grpc::Channel> channel);

}  // namespace pettube::auth
