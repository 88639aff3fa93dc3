#include "services/auth-token-exchange/trusted_issuers.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/auth/jwk.h"

namespace pettube::auth {
namespace {

// A caller-supplied string, made safe to put in a message.
std::string Quote(absl::string_view untrusted) {
  return absl::StrCat("\"", absl::CHexEscape(untrusted.substr(0, 100)), "\"");
}

}  // namespace

absl::StatusOr<std::vector<IssuerConfig>> ParseIssuersFile(absl::string_view text) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_array()) {
    return absl::InvalidArgumentError("trusted issuers: must be a JSON array of objects");
  }
  std::vector<IssuerConfig> out;
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& e = doc[i];
    IssuerConfig c;
    for (auto [field, target] : {std::pair<const char*, std::string*>{"issuer", &c.issuer},
                                 {"client_id", &c.client_id},
                                 {"jwks_uri", &c.jwks_uri}}) {
      if (!e.is_object() || !e.contains(field) || !e[field].is_string() ||
          e[field].get<std::string>().empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("trusted issuers[", i, "].", field, ": must be a non-empty string"));
      }
      *target = e[field].get<std::string>();
    }
    out.push_back(std::move(c));
  }
  return out;
}

TrustedIssuers::TrustedIssuers(JwksFetcher* fetcher, absl::Duration min_refresh_interval)
    : fetcher_(fetcher), min_refresh_interval_(min_refresh_interval) {}

void TrustedIssuers::Add(const IssuerConfig& config) {
  absl::MutexLock lock(&mu_);
  issuers_[config.issuer] = Issuer{config, nullptr, nullptr, absl::InfinitePast()};
}

void TrustedIssuers::AddLocal(const IssuerConfig& config, std::function<std::string()> jwks_json) {
  absl::MutexLock lock(&mu_);
  issuers_[config.issuer] = Issuer{config, std::move(jwks_json), nullptr, absl::InfinitePast()};
}

absl::StatusOr<std::shared_ptr<const Verifier>> TrustedIssuers::Refresh(Issuer& issuer,
                                                                        absl::Time now) {
  issuer.last_fetch = now;
  absl::StatusOr<std::string> text =
      issuer.local_jwks ? issuer.local_jwks() : fetcher_->Fetch(issuer.config.jwks_uri);
  if (!text.ok()) return text.status();
  auto keys = ParseJwks(*text);
  if (!keys.ok()) {
    return absl::UnavailableError(absl::StrCat("keys of issuer ", Quote(issuer.config.issuer), ": ",
                                               keys.status().message()));
  }
  ValidationPolicy policy;
  policy.issuers = {issuer.config.issuer};
  policy.audience = issuer.config.client_id;
  auto verifier = Verifier::Create(std::move(*keys), std::move(policy));
  if (!verifier.ok()) return verifier.status();
  issuer.verifier = std::make_shared<const Verifier>(std::move(*verifier));
  return issuer.verifier;
}

absl::StatusOr<nlohmann::json> TrustedIssuers::Verify(absl::string_view id_token, absl::Time now) {
  // The issuer named in the (not yet verified) token only picks whose keys
  // to check with; the verification itself decides.
  auto parsed = ParseCompact(id_token);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& iss = parsed->claims["iss"];
  if (!iss.is_string()) return absl::UnauthenticatedError("token: iss is missing");
  std::shared_ptr<const Verifier> verifier;
  {
    absl::MutexLock lock(&mu_);
    auto it = issuers_.find(iss.get<std::string>());
    if (it == issuers_.end()) {
      return absl::UnauthenticatedError(
          absl::StrCat("token: iss ", Quote(iss.get<std::string>()), " is not trusted"));
    }
    verifier = it->second.verifier;
    if (verifier == nullptr) {
      auto fresh = Refresh(it->second, now);
      if (!fresh.ok()) return fresh.status();
      verifier = *fresh;
    }
  }
  auto claims = verifier->Verify(id_token, now);
  if (claims.ok() || !IsUnknownKeyId(claims.status())) return claims;
  // The provider may have rotated its keys: refresh once, rate-limited.
  {
    absl::MutexLock lock(&mu_);
    Issuer& issuer = issuers_[iss.get<std::string>()];
    if (now - issuer.last_fetch < min_refresh_interval_) return claims.status();
    auto fresh = Refresh(issuer, now);
    if (!fresh.ok()) return fresh.status();
    verifier = *fresh;
  }
  return verifier->Verify(id_token, now);
}

}  // namespace pettube::auth
