#include "services/broker/client_id_resolver.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/status/grpc_status.h"

namespace pettube::broker {

GrpcClientIdResolver::GrpcClientIdResolver(std::shared_ptr<grpc::Channel> auth_channel)
    : stub_(auth::v1::TokenExchange::NewStub(std::move(auth_channel))) {}

void GrpcClientIdResolver::Resolve(const std::string& identity, const std::string& bearer_token,
                                   Done done) {
  std::optional<std::string> known;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = known_.find(identity); it != known_.end()) known = it->second;
  }
  if (known.has_value()) {
    done(*std::move(known));
    return;
  }
  struct Call {
    grpc::ClientContext context;
    auth::v1::GetIdentityRequest request;
    auth::v1::Identity response;
  };
  auto call = std::make_shared<Call>();
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  call->context.AddMetadata("authorization", absl::StrCat("Bearer ", bearer_token));
  call->request.set_name(absl::StrCat("identities/", identity));
  stub_->async()->GetIdentity(
      &call->context, &call->request, &call->response,
      [this, call, identity, done = std::move(done)](grpc::Status status) {
        if (!status.ok()) {
          done(status::FromGrpcStatus(status, "look up the caller's workload client id"));
          return;
        }
        if (!call->response.workload()) {
          done(absl::NotFoundError(absl::StrCat("identity ", identity, " is not a workload")));
          return;
        }
        {
          absl::MutexLock lock(&mu_);
          known_[identity] = call->response.subject();
        }
        done(call->response.subject());
      });
}

}  // namespace pettube::broker
