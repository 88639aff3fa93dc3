#include "libs/auth/credentials/token_source.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/status/grpc_status.h"

namespace pettube::auth {

absl::Status TokenSource::Attach(grpc::ClientContext& context) {
  auto token = Token();
  if (!token.ok()) return token.status();
  context.AddMetadata("authorization", absl::StrCat("Bearer ", *token));
  return absl::OkStatus();
}

WorkloadTokenSource::WorkloadTokenSource(std::shared_ptr<grpc::Channel> auth_channel,
                                         std::string client_id, std::string client_secret,
                                         std::vector<std::string> scopes)
    : stub_(v1::TokenExchange::NewStub(std::move(auth_channel))),
      client_id_(std::move(client_id)),
      client_secret_(std::move(client_secret)),
      scopes_(std::move(scopes)) {}

absl::StatusOr<std::string> WorkloadTokenSource::Token() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (!token_.empty() && now < renew_at_) return token_;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::IssueWorkloadTokenRequest req;
  req.set_client_id(client_id_);
  req.set_client_secret(client_secret_);
  for (const auto& s : scopes_) req.add_scopes(s);
  v1::ExchangeTokenResponse resp;
  const grpc::Status s = stub_->IssueWorkloadToken(&ctx, req, &resp);
  if (!s.ok()) {
    // A token that has not expired yet still works while auth is away.
    if (!token_.empty() && now < expire_at_) return token_;
    return status::FromGrpcStatus(s, "IssueWorkloadToken");
  }
  token_ = resp.access_token();
  expire_at_ = absl::FromUnixSeconds(resp.expire_time().seconds());
  renew_at_ = now + (expire_at_ - now) * 2 / 3;
  return token_;
}

}  // namespace pettube::auth
