#pragma once

#include "libs/auth/credentials/authenticator.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "services/auth-token-exchange/dev_identity_provider.h"
#include "services/auth-token-exchange/key_manager.h"
#include "services/auth-token-exchange/token_exchange.h"

namespace pettube::auth {

// The gRPC face of TokenExchange: proto in, core call, status out.
// Thread-safe; collaborators must outlive it.
class TokenExchangeService : public v1::TokenExchange::CallbackService {
 public:
  TokenExchangeService(TokenExchange& exchange, KeyManager& keys, AuthStore& store,
                       const Authenticator& authenticator)
      : exchange_(exchange), keys_(keys), store_(store), authenticator_(authenticator) {}

  grpc::ServerUnaryReactor* ExchangeToken(grpc::CallbackServerContext* context,
                                          const v1::ExchangeTokenRequest* request,
                                          v1::ExchangeTokenResponse* response) override;
  grpc::ServerUnaryReactor* IssueWorkloadToken(grpc::CallbackServerContext* context,
                                               const v1::IssueWorkloadTokenRequest* request,
                                               v1::ExchangeTokenResponse* response) override;
  grpc::ServerUnaryReactor* GetJwks(grpc::CallbackServerContext* context,
                                    const v1::GetJwksRequest* request, v1::Jwks* response) override;
  grpc::ServerUnaryReactor* GetIdentity(grpc::CallbackServerContext* context,
                                        const v1::GetIdentityRequest* request,
                                        v1::Identity* response) override;

 private:
  TokenExchange& exchange_;
  KeyManager& keys_;
  AuthStore& store_;
  const Authenticator& authenticator_;
};

// The development identity provider's RPC (served only with --dev_idp).
class DevIdentityProviderService : public v1::DevIdentityProvider::CallbackService {
 public:
  explicit DevIdentityProviderService(const DevIdentityProvider& idp) : idp_(idp) {}
  grpc::ServerUnaryReactor* MintIdToken(grpc::CallbackServerContext* context,
                                        const v1::MintIdTokenRequest* request,
                                        v1::MintIdTokenResponse* response) override;

 private:
  const DevIdentityProvider& idp_;
};

}  // namespace pettube::auth
