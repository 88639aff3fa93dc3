#include "services/auth-token-exchange/token_exchange.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "libs/auth/jwt.h"
#include "libs/time/proto_time.h"

namespace pettube::auth {
namespace {

bool ValidScopeSyntax(absl::string_view scope) {
  if (scope.empty() || scope.size() > 64) return false;
  return std::all_of(scope.begin(), scope.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

std::string NewTokenId() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

}  // namespace

TokenExchange::TokenExchange(Options options, TrustedIssuers* issuers, AuthStore* store,
                             KeyManager* keys, const WorkloadClients* workloads)
    : options_(std::move(options)),
      issuers_(issuers),
      store_(store),
      keys_(keys),
      workloads_(workloads) {}

absl::StatusOr<absl::Duration> TokenExchange::Lifetime(
    const google::protobuf::Duration* requested) const {
  if (requested == nullptr) return options_.default_lifetime;
  const absl::Duration d =
      absl::Seconds(requested->seconds()) + absl::Nanoseconds(requested->nanos());
  if (d < options_.min_lifetime || d > options_.max_lifetime) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lifetime: must be ", absl::FormatDuration(options_.min_lifetime), " to ",
        absl::FormatDuration(options_.max_lifetime), ", got ", absl::FormatDuration(d)));
  }
  return d;
}

absl::StatusOr<v1::ExchangeTokenResponse> TokenExchange::Exchange(
    const v1::ExchangeTokenRequest& request, absl::Time now) {
  if (request.subject_token_type() != kIdTokenType && request.subject_token_type() != kJwtType) {
    return absl::InvalidArgumentError(
        absl::StrCat("subject_token_type: must be \"", kIdTokenType, "\", got \"",
                     request.subject_token_type().substr(0, 100), "\""));
  }
  if (request.subject_token().empty()) {
    return absl::InvalidArgumentError("subject_token: must not be empty");
  }
  std::vector<std::string> scopes(request.scopes().begin(), request.scopes().end());
  for (size_t i = 0; i < scopes.size(); ++i) {
    if (!ValidScopeSyntax(scopes[i])) {
      return absl::InvalidArgumentError(absl::StrCat("scopes[", i, "]: malformed scope"));
    }
    if (std::find(options_.user_scopes.begin(), options_.user_scopes.end(), scopes[i]) ==
        options_.user_scopes.end()) {
      return absl::PermissionDeniedError(
          absl::StrCat("scopes[", i, "]: \"", scopes[i], "\" is not granted to people (allowed: ",
                       absl::StrJoin(options_.user_scopes, ", "), ")"));
    }
  }
  if (scopes.empty()) scopes = options_.user_scopes;
  const std::string audience =
      request.audience().empty() ? options_.default_audience : request.audience();
  if (std::find(options_.audiences.begin(), options_.audiences.end(), audience) ==
      options_.audiences.end()) {
    return absl::InvalidArgumentError(absl::StrCat("audience: \"", audience, "\" is not served"));
  }
  auto lifetime = Lifetime(request.has_lifetime() ? &request.lifetime() : nullptr);
  if (!lifetime.ok()) return lifetime.status();

  auto claims = issuers_->Verify(request.subject_token(), now);
  if (!claims.ok()) return claims.status();
  const std::string issuer = (*claims)["iss"].get<std::string>();
  const std::string subject = (*claims)["sub"].get<std::string>();
  auto identity = store_->GetOrCreateIdentity(issuer, subject, /*workload=*/false);
  if (!identity.ok()) return identity.status();
  // As with STS AssumeRoleWithWebIdentity, the lifetime is the caller's
  // choice within our bounds; the ID token's exp gates only the exchange.
  return Issue(*identity, scopes, audience, *lifetime, now);
}

absl::StatusOr<v1::ExchangeTokenResponse> TokenExchange::IssueWorkloadToken(
    const v1::IssueWorkloadTokenRequest& request, absl::Time now) {
  if (request.client_id().empty())
    return absl::InvalidArgumentError("client_id: must not be empty");
  std::vector<std::string> requested(request.scopes().begin(), request.scopes().end());
  auto scopes = workloads_->Authenticate(request.client_id(), request.client_secret(), requested);
  if (!scopes.ok()) return scopes.status();
  auto lifetime = Lifetime(request.has_lifetime() ? &request.lifetime() : nullptr);
  if (!lifetime.ok()) return lifetime.status();
  auto identity = store_->GetOrCreateIdentity("", request.client_id(), /*workload=*/true);
  if (!identity.ok()) return identity.status();
  return Issue(*identity, *scopes, options_.default_audience, *lifetime, now);
}

absl::StatusOr<v1::ExchangeTokenResponse> TokenExchange::Issue(
    const v1::Identity& identity, const std::vector<std::string>& scopes,
    const std::string& audience, absl::Duration lifetime, absl::Time now) {
  const std::string id = identity.name().substr(sizeof("identities/") - 1);
  const int64_t iat = absl::ToUnixSeconds(now);
  const int64_t exp = iat + absl::ToInt64Seconds(lifetime);
  nlohmann::json claims = {
      {"iss", options_.issuer},
      {"sub", id},
      {"aud", audience},
      {"iat", iat},
      {"nbf", iat},
      {"exp", exp},
      {"jti", NewTokenId()},
      {"scope", absl::StrJoin(scopes, " ")},
  };
  if (identity.workload()) claims["workload"] = true;
  auto key = keys_->Current();
  auto token = SignCompact(claims, *key);
  if (!token.ok()) return token.status();
  v1::ExchangeTokenResponse out;
  out.set_access_token(std::move(*token));
  out.set_issued_token_type(kAccessTokenType);
  out.set_token_type("Bearer");
  out.mutable_expire_time()->set_seconds(exp);
  for (const auto& s : scopes) out.add_scopes(s);
  *out.mutable_identity() = identity;
  return out;
}

}  // namespace pettube::auth
