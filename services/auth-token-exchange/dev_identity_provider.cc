#include "services/auth-token-exchange/dev_identity_provider.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "libs/auth/jwt.h"
#include "nlohmann/json.hpp"

namespace pettube::auth {

absl::StatusOr<std::unique_ptr<DevIdentityProvider>> DevIdentityProvider::Open(
    const std::string& key_file, std::string issuer, std::string client_id) {
  constexpr char kKid[] = "dev-idp-1";
  absl::StatusOr<SigningKey> key = absl::NotFoundError("");
  std::ifstream in(key_file, std::ios::binary);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    key = SigningKey::FromPem(ss.str(), kKid);
  } else {
    key = SigningKey::Generate(kKid);
    if (key.ok()) {
      std::ofstream out(key_file, std::ios::binary | std::ios::trunc);
      out << key->PrivatePem();
      out.close();
      if (!out) return absl::PermissionDeniedError(absl::StrCat(key_file, ": cannot write"));
      ::chmod(key_file.c_str(), 0600);
    }
  }
  if (!key.ok()) return key.status();
  auto pub = key->ToPublicKey();
  if (!pub.ok()) return pub.status();
  JwkSet set;
  if (auto s = set.Add(std::move(*pub)); !s.ok()) return s;
  return std::unique_ptr<DevIdentityProvider>(new DevIdentityProvider(
      std::move(*key), std::move(issuer), std::move(client_id), ToJwksJson(set)));
}

absl::StatusOr<v1::MintIdTokenResponse> DevIdentityProvider::Mint(
    const v1::MintIdTokenRequest& request, absl::Time now) const {
  if (request.user().empty() || request.user().size() > 128) {
    return absl::InvalidArgumentError("user: must be 1-128 characters");
  }
  absl::Duration lifetime = absl::Hours(1);
  if (request.has_lifetime()) {
    lifetime = absl::Seconds(request.lifetime().seconds());
    if (lifetime < absl::Minutes(1) || lifetime > absl::Hours(24)) {
      return absl::InvalidArgumentError("lifetime: must be 1 min to 24 h");
    }
  }
  const int64_t iat = absl::ToUnixSeconds(now);
  nlohmann::json claims = {
      {"iss", issuer_},
      {"sub", request.user()},
      {"aud", request.audience().empty() ? client_id_ : request.audience()},
      {"iat", iat},
      {"exp", iat + absl::ToInt64Seconds(lifetime)},
  };
  if (!request.email().empty()) {
    claims["email"] = request.email();
    claims["email_verified"] = true;
  }
  auto token = SignCompact(claims, key_);
  if (!token.ok()) return token.status();
  v1::MintIdTokenResponse out;
  out.set_id_token(std::move(*token));
  out.set_issuer(issuer_);
  out.mutable_expire_time()->set_seconds(iat + absl::ToInt64Seconds(lifetime));
  return out;
}

}  // namespace pettube::auth
