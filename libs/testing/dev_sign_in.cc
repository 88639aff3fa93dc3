#include "libs/testing/dev_sign_in.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pettube::testing {
namespace {

void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

}  // namespace

absl::StatusOr<auth::v1::ExchangeTokenResponse> DevSignIn(
    const std::shared_ptr<grpc::Channel>& auth, const std::string& user) {
  grpc::ClientContext mint_ctx;
  SetDeadline(mint_ctx);
  auth::v1::MintIdTokenRequest mint;
  mint.set_user(user);
  auth::v1::MintIdTokenResponse minted;
  grpc::Status s =
      auth::v1::DevIdentityProvider::NewStub(auth)->MintIdToken(&mint_ctx, mint, &minted);
  if (!s.ok()) return absl::UnknownError(absl::StrCat("MintIdToken: ", s.error_message()));
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  auth::v1::ExchangeTokenRequest req;
  req.set_subject_token(minted.id_token());
  req.set_subject_token_type("urn:ietf:params:oauth:token-type:id_token");
  auth::v1::ExchangeTokenResponse resp;
  s = auth::v1::TokenExchange::NewStub(auth)->ExchangeToken(&ctx, req, &resp);
  if (!s.ok()) return absl::UnknownError(absl::StrCat("ExchangeToken: ", s.error_message()));
  return resp;
}

std::string IdentityId(const auth::v1::ExchangeTokenResponse& signed_in) {
  std::string id = signed_in.identity().name();
  if (absl::StartsWith(id, "identities/")) id = id.substr(sizeof("identities/") - 1);
  return id;
}

}  // namespace pettube::testing
