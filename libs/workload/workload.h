#pragma once

// What a PetTube media service needs to talk to the rest of the suite: its
// own workload credentials, channels to auth-token-exchange and the broker,
// and an Authenticator for the tokens its callers present. Flags:
//
//   --auth_server=HOST:PORT      auth-token-exchange (keys and workload tokens)
//   --broker_server=HOST:PORT    the broker
//   --client_id=NAME             this service's workload client id
//   --client_secret_file=PATH    its secret (e.g. a mounted Kubernetes Secret)
//   --auth_issuer, --auth_audience   "iss" and "aud" of accepted access tokens
//
//   auto workload = pettube::workload::FromFlags({"events.publish"});
//   if (!workload.ok()) return pettube::server::ExitWith(workload.status());
//   publisher_options.configure_context = workload->ConfigureContext();

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/auth/credentials/authenticator.h"
#include "libs/auth/credentials/token_source.h"

namespace pettube::workload {

// Shares its parts; copyable handles. Thread-safe.
struct Workload {
  std::shared_ptr<grpc::Channel> auth_channel;
  // Null when --broker_server is empty.
  std::shared_ptr<grpc::Channel> broker_channel;
  // Null when --client_id is empty (calls then go without a token: only a
  // broker without --auth_server accepts them).
  std::shared_ptr<auth::TokenSource> tokens;
  // Verifies callers' access tokens with auth's published keys.
  std::shared_ptr<auth::Authenticator> authenticator;

  // Adds "authorization: Bearer <token>" to a call's context; for
  // Publisher/Subscriber Options::configure_context. When no token can be
  // had the call goes without one and fails UNAUTHENTICATED, which those
  // clients retry with backoff.
  std::function<void(grpc::ClientContext&)> ConfigureContext() const;
};

// From the flags above; `scopes` are the workload scopes to ask for.
// INVALID_ARGUMENT naming the flag when --auth_server is missing or
// --client_id is set without --client_secret_file; the secret file's read
// error otherwise. Fetches nothing yet: keys and tokens come on first use.
absl::StatusOr<Workload> FromFlags(std::vector<std::string> scopes);

}  // namespace pettube::workload
