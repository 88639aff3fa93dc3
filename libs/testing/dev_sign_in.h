#pragma once

// A person's sign-in as tests do it locally: an ID token from the
// development identity provider, exchanged at TokenExchange for a PetTube
// access token (the CLI's `pettube login USER`).

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"

namespace pettube::testing {

// Signs `user` in through auth-token-exchange on `auth` (started with
// --dev_idp). The error names the call that failed. 10 s per call.
absl::StatusOr<auth::v1::ExchangeTokenResponse> DevSignIn(
    const std::shared_ptr<grpc::Channel>& auth, const std::string& user);

// The identity id ("identities/{id}" without its prefix): the owner
// segment of the person's object keys.
std::string IdentityId(const auth::v1::ExchangeTokenResponse& signed_in);

}  // namespace pettube::testing
