#pragma once

// Signing in and staying signed in: the dev identity provider or an
// external OIDC ID token, exchanged at auth-token-exchange for a PetTube
// access token, cached in the config directory (credentials.json, 0600) and
// renewed before it expires. Not thread-safe.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/pettube/config.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"

namespace pettube::cli {

// Makes a channel to "HOST:PORT".
using ChannelFactory =
    std::function<absl::StatusOr<std::shared_ptr<grpc::Channel>>(const std::string&)>;

class Session {
 public:
  // `auth_address` may be empty: renewal then uses the address stored with
  // the credentials.
  Session(std::string config_dir, std::string auth_address, ChannelFactory channels,
          std::function<absl::Time()> now = absl::Now);

  // Signs in `user` through the development identity provider (the server
  // must run with --dev_idp) and stores the credentials.
  absl::StatusOr<Credentials> LoginDev(const std::string& user);

  // Signs in with an ID token from an external OIDC provider (one the
  // server trusts) and stores the credentials. The ID token is kept to
  // renew the access token while it is valid.
  absl::StatusOr<Credentials> LoginOidc(const std::string& id_token);

  // The stored credentials, renewed first if they expire within
  // kRenewBefore. UNAUTHENTICATED when not signed in, or when they expired
  // and cannot be renewed (the message says to run `pettube login`).
  absl::StatusOr<Credentials> Current();

  // Forgets the stored credentials. OK if there were none.
  absl::Status Logout();

  // A dev identity provider ID token for `user` (for scripts, e.g. ghz).
  absl::StatusOr<auth::v1::MintIdTokenResponse> MintDevIdToken(const std::string& user);

  std::string credentials_path() const { return config_dir_ + "/credentials.json"; }

 private:
  absl::StatusOr<std::unique_ptr<auth::v1::TokenExchange::Stub>> ExchangeStub(const std::string& address);
  absl::StatusOr<Credentials> Exchange(const std::string& address, const std::string& id_token);

  const std::string config_dir_;
  const std::string auth_address_;
  ChannelFactory channels_;
  std::function<absl::Time()> now_;
};

// Access token lifetime the CLI asks for (the server allows 15 min - 12 h).
inline constexpr absl::Duration kAccessTokenLifetime = absl::Hours(1);

}  // namespace pettube::cli
