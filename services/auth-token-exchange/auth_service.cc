#include "services/auth-token-exchange/auth_service.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/server/unary.h"

namespace pettube::auth {
grpc::ServerUnaryReactor* TokenExchangeService::ExchangeToken(
    grpc::CallbackServerContext* context, const v1::ExchangeTokenRequest* request,
    v1::ExchangeTokenResponse* response) {
  return server::FinishUnary(context, exchange_.Exchange(*request, absl::Now()), response);
}

grpc::ServerUnaryReactor* TokenExchangeService::IssueWorkloadToken(
    grpc::CallbackServerContext* context, const v1::IssueWorkloadTokenRequest* request,
    v1::ExchangeTokenResponse* response) {
  return server::FinishUnary(context, exchange_.IssueWorkloadToken(*request, absl::Now()),
                             response);
}

grpc::ServerUnaryReactor* TokenExchangeService::GetJwks(grpc::CallbackServerContext* context,
                                                        const v1::GetJwksRequest*,
                                                        v1::Jwks* response) {
  v1::Jwks jwks;
  jwks.set_json(keys_.JwksJson());
  for (const auto& kid : keys_.KeyIds()) jwks.add_key_ids(kid);
  return server::FinishUnary(context, absl::StatusOr<v1::Jwks>(std::move(jwks)), response);
}

grpc::ServerUnaryReactor* TokenExchangeService::GetIdentity(grpc::CallbackServerContext* context,
                                                            const v1::GetIdentityRequest* request,
                                                            v1::Identity* response) {
  constexpr absl::string_view kPrefix = "identities/";
  absl::string_view name = request->name();
  if (name.substr(0, kPrefix.size()) != kPrefix || name.size() == kPrefix.size()) {
    return server::FinishUnary(context,
                               absl::StatusOr<v1::Identity>(absl::InvalidArgumentError(absl::StrCat(
                                   "name: must be \"identities/{id}\", got \"", name, "\""))),
                               response);
  }
  auto caller = authenticator_.Authenticate(*context);
  if (!caller.ok())
    return server::FinishUnary(context, absl::StatusOr<v1::Identity>(caller.status()), response);
  const std::string id(name.substr(kPrefix.size()));
  if (caller->identity != id) {
    return server::FinishUnary(context,
                               absl::StatusOr<v1::Identity>(absl::PermissionDeniedError(
                                   "identities may be looked up only by themselves")),
                               response);
  }
  return server::FinishUnary(context, store_.GetIdentity(id), response);
}

grpc::ServerUnaryReactor* DevIdentityProviderService::MintIdToken(
    grpc::CallbackServerContext* context, const v1::MintIdTokenRequest* request,
    v1::MintIdTokenResponse* response) {
  return server::FinishUnary(context, idp_.Mint(*request, absl::Now()), response);
}

}  // namespace pettube::auth
