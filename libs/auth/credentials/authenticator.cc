#include "libs/auth/credentials/authenticator.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/auth/jwk.h"
#include "libs/status/grpc_status.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"

namespace pettube::auth {

Authenticator::Authenticator(Options options, JwksSource source)
    : options_(std::move(options)), source_(std::move(source)) {}

absl::StatusOr<std::shared_ptr<const Verifier>> Authenticator::Refresh(absl::Time now) const {
  last_fetch_ = now;
  auto text = source_();
  if (!text.ok()) {
    return absl::UnavailableError(absl::StrCat("access token keys: ", text.status().message()));
  }
  auto keys = ParseJwks(*text);
  if (!keys.ok())
    return absl::UnavailableError(absl::StrCat("access token keys: ", keys.status().message()));
  ValidationPolicy policy;
  policy.issuers = {options_.issuer};
  policy.audience = options_.audience;
  auto verifier = Verifier::Create(std::move(*keys), std::move(policy));
  if (!verifier.ok()) return verifier.status();
  verifier_ = std::make_shared<const Verifier>(std::move(*verifier));
  return verifier_;
}

absl::Status Authenticator::Prefetch() const {
  absl::MutexLock lock(&mu_);
  return Refresh(absl::Now()).status();
}

absl::StatusOr<Caller> Authenticator::AuthenticateToken(absl::string_view token) const {
  const absl::Time now = absl::Now();
  std::shared_ptr<const Verifier> verifier;
  {
    absl::MutexLock lock(&mu_);
    verifier = verifier_;
    if (verifier == nullptr) {
      if (now - last_fetch_ < options_.min_refresh_interval &&
          last_fetch_ != absl::InfinitePast()) {
        return absl::UnavailableError("access token keys: not fetched yet; retry");
      }
      auto fresh = Refresh(now);
      if (!fresh.ok()) return fresh.status();
      verifier = *fresh;
    }
  }
  auto claims = verifier->Verify(token, now);
  if (!claims.ok() && IsUnknownKeyId(claims.status())) {
    // auth-token-exchange may have rotated: one rate-limited refresh.
    absl::MutexLock lock(&mu_);
    if (now - last_fetch_ >= options_.min_refresh_interval) {
      auto fresh = Refresh(now);
      if (!fresh.ok()) return fresh.status();
      claims = (*fresh)->Verify(token, now);
    }
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
