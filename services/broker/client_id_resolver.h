#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"

namespace pettube::broker {

// The workload client id behind an identity id (a token's "sub"): what the
// access policy names workloads by. Thread-safe.
class ClientIdResolver {
 public:
  using Done = std::function<void(absl::StatusOr<std::string>)>;
  virtual ~ClientIdResolver() = default;
  // Calls `done` once, with the client id of workload `identity` or why it
  // is unknown: inline when known, else later on another thread.
  // `bearer_token` is the caller's own (identities may look up only
  // themselves).
  virtual void Resolve(const std::string& identity, const std::string& bearer_token, Done done) = 0;
};

// Asks auth-token-exchange (TokenExchange.GetIdentity, with the caller's own
// token) and remembers the answer: an identity's subject never changes, so
// each workload costs one lookup per broker lifetime. Lookups are async;
// nothing blocks.
class GrpcClientIdResolver : public ClientIdResolver {
 public:
  explicit GrpcClientIdResolver(std::shared_ptr<grpc::Channel> auth_channel);
  void Resolve(const std::string& identity, const std::string& bearer_token, Done done) override;

 private:
  std::unique_ptr<auth::v1::TokenExchange::Stub> stub_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::string> known_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::broker
