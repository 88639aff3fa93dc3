#include "libs/auth/credentials/authenticator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/jwk.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"

namespace pettube::auth {
namespace {

// A failed fetch is retried no sooner than an unknown kid could ask for one,
// and at least a second apart (tests set min_refresh_interval to 0).
time::BackoffPolicy RetryPolicy(const Authenticator::Options& options) {
  const absl::Duration initial = std::max(options.min_refresh_interval, absl::Seconds(1));
  return time::MakeBackoffPolicy(initial, std::max(options.refresh_interval, initial),
                                 time::Jitter::kEqual);
}

}  // namespace

Authenticator::Authenticator(Options options, JwksSource source)
    : options_(std::move(options)),
      source_(std::move(source)),
      clock_(options_.clock != nullptr ? *options_.clock : time::RealClock()),
      retry_backoff_(RetryPolicy(options_)),
      thread_([this] { RefreshLoop(); }) {}

Authenticator::~Authenticator() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::StatusOr<std::shared_ptr<const Verifier>> Authenticator::Fetch() const {
  auto text = source_();
  if (!text.ok()) {
    return absl::UnavailableError(absl::StrCat("access token keys: ", text.status().message()));
  }
  auto keys = ParseJwks(*text);
  if (!keys.ok()) {
    return absl::UnavailableError(absl::StrCat("access token keys: ", keys.status().message()));
  }
  ValidationPolicy policy;
  policy.issuers = {options_.issuer};
  policy.audience = options_.audience;
  auto verifier = Verifier::Create(std::move(*keys), std::move(policy));
  if (!verifier.ok()) return verifier.status();
  return std::make_shared<const Verifier>(std::move(*verifier));
}

void Authenticator::RefreshLoop() {
  mu_.Lock();
  while (true) {
    clock_.AwaitWithDeadline(mu_, absl::Condition(this, &Authenticator::RefreshWantedLocked),
                             next_refresh_);
    if (stopping_) break;
    refresh_requested_ = false;
    fetch_in_flight_ = true;
    last_fetch_start_ = clock_.Now();
    // A slow auth-token-exchange delays only the callers that need new keys.
    mu_.Unlock();
    absl::StatusOr<std::shared_ptr<const Verifier>> fetched = Fetch();
    mu_.Lock();
    fetch_in_flight_ = false;
    ++fetches_done_;
    const absl::Time now = clock_.Now();
    if (fetched.ok()) {
      verifier_ = *std::move(fetched);
      last_status_ = absl::OkStatus();
      consecutive_failures_ = 0;
      next_refresh_ = now + options_.refresh_interval;
    } else {
      // The cached keys, if any, stay in use.
      last_status_ = fetched.status();
      ++consecutive_failures_;
      const absl::Duration retry = retry_backoff_.Delay(consecutive_failures_);
      next_refresh_ = now + retry;
      log::Warning("auth.keys_fetch_failed",
                   {{"code", last_status_},
                    {"attempt", consecutive_failures_},
                    {"retry_in", absl::FormatDuration(absl::Trunc(retry, absl::Milliseconds(1)))}});
    }
  }
  mu_.Unlock();
}

absl::StatusOr<std::shared_ptr<const Verifier>> Authenticator::AwaitNewerKeys(
    const std::shared_ptr<const Verifier>& seen) const {
  uint64_t target;
  {
    absl::MutexLock lock(&mu_);
    if (verifier_ != seen) return verifier_;
    const bool coming = fetches_done_ == 0 || fetch_in_flight_ || refresh_requested_;
    if (!coming) {
      if (clock_.Now() - last_fetch_start_ < options_.min_refresh_interval) {
        if (!last_status_.ok()) return last_status_;
        return seen;  // rate-limited: the caller's kid stays unknown
      }
      refresh_requested_ = true;  // wakes the thread
    }
    // The fetch in flight, or else the next one.
    target = fetches_done_ + 1;
  }
  if (options_.on_key_wait) options_.on_key_wait();
  absl::MutexLock lock(&mu_);
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return fetches_done_ >= target || stopping_;
  };
  if (!clock_.AwaitWithDeadline(mu_, absl::Condition(&done),
                                clock_.Now() + options_.max_key_wait) ||
      stopping_) {
    return absl::UnavailableError("access token keys: still being fetched; retry");
  }
  if (verifier_ == seen && !last_status_.ok()) return last_status_;
  return verifier_;
}

absl::Status Authenticator::Prefetch() const {
  absl::MutexLock lock(&mu_);
  auto done = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return fetches_done_ >= 1 || stopping_; };
  if (!clock_.AwaitWithDeadline(mu_, absl::Condition(&done),
                                clock_.Now() + options_.max_key_wait) ||
      fetches_done_ == 0) {
    return absl::UnavailableError("access token keys: first fetch still running");
  }
  return last_status_;
}

absl::StatusOr<Caller> Authenticator::AuthenticateToken(absl::string_view token) const {
  const absl::Time now = clock_.Now();
  std::shared_ptr<const Verifier> verifier;
  {
    absl::ReaderMutexLock lock(&mu_);
    verifier = verifier_;
  }
  absl::StatusOr<nlohmann::json> claims =
      absl::UnavailableError("access token keys: not fetched yet");
  if (verifier != nullptr) claims = verifier->Verify(token, now);
  if (verifier == nullptr || (!claims.ok() && IsUnknownKeyId(claims.status()))) {
    // No keys yet, or auth-token-exchange may have rotated: wait for the one
    // fetch that brings newer keys.
    auto newer = AwaitNewerKeys(verifier);
    if (!newer.ok()) return newer.status();
    if (*newer == verifier) return claims.status();
    claims = (*newer)->Verify(token, now);
  }
  if (!claims.ok()) return claims.status();
  Caller caller;
  caller.identity = (*claims)["sub"].get<std::string>();
  if (claims->contains("scope") && (*claims)["scope"].is_string()) {
    for (absl::string_view s :
         absl::StrSplit((*claims)["scope"].get<std::string>(), ' ', absl::SkipEmpty())) {
      caller.scopes.insert(std::string(s));
    }
  }
  caller.workload = claims->value("workload", false);
  caller.token_id = claims->value("jti", "");
  caller.expire_time = absl::FromUnixSeconds((*claims)["exp"].get<int64_t>());
  return caller;
}

absl::StatusOr<Caller> Authenticator::Authenticate(const grpc::ServerContextBase& context) const {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "missing credentials: send \"authorization: Bearer <token>\"");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ") && !absl::ConsumePrefix(&value, "bearer ")) {
    return absl::UnauthenticatedError("authorization: must be \"Bearer <token>\"");
  }
  return AuthenticateToken(value);
}

absl::StatusOr<Caller> Authenticator::Authorize(const grpc::ServerContextBase& context,
                                                absl::string_view scope) const {
  auto caller = Authenticate(context);
  if (!caller.ok()) return caller;
  if (!caller->HasScope(scope)) {
    return absl::PermissionDeniedError(
        absl::StrCat("the access token lacks scope \"", scope, "\" needed for this call"));
  }
  return caller;
}

Authenticator::JwksSource GrpcJwksSource(std::shared_ptr<grpc::Channel> channel) {
  return [stub = std::shared_ptr<v1::TokenExchange::Stub>(
              v1::TokenExchange::NewStub(channel))]() -> absl::StatusOr<std::string> {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::GetJwksRequest req;
    v1::Jwks jwks;
    const grpc::Status s = stub->GetJwks(&ctx, req, &jwks);
    if (!s.ok()) return status::FromGrpcStatus(s, "GetJwks");
    return jwks.json();
  };
}

}  // namespace pettube::auth
