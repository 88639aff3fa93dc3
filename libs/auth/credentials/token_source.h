#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"

namespace pettube::auth {

// Supplies the access token a client attaches to its calls.
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  virtual absl::StatusOr<std::string> Token() = 0;

  // Adds "authorization: Bearer <token>" to `context`; the call fails with
  // the token's error if none can be had.
  absl::Status Attach(grpc::ClientContext& context);
};

// A token obtained elsewhere (a person's, after ExchangeToken).
class StaticTokenSource : public TokenSource {
 public:
  explicit StaticTokenSource(std::string token) : token_(std::move(token)) {}
  absl::StatusOr<std::string> Token() override { return token_; }

 private:
  std::string token_;
};

// A workload's own credentials: the client-credentials grant against
// auth-token-exchange, renewed when two thirds of the lifetime have passed
// (at the next Token() call: nothing runs while nobody calls).
// Thread-safe.
class WorkloadTokenSource : public TokenSource {
 public:
  WorkloadTokenSource(std::shared_ptr<grpc::Channel> auth_channel, std::string client_id,
                      std::string client_secret, std::vector<std::string> scopes);
  absl::StatusOr<std::string> Token() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::unique_ptr<v1::TokenExchange::Stub> stub_;
  const std::string client_id_;
  const std::string client_secret_;
  const std::vector<std::string> scopes_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time renew_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time expire_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace pettube::auth
