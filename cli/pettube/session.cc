#include "cli/pettube/session.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "libs/status/grpc_status.h"
#include "libs/time/proto_time.h"

namespace pettube::cli {
namespace {

constexpr absl::Duration kRpcTimeout = absl::Seconds(15);

void SetDeadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kRpcTimeout));
}

absl::Status NotSignedIn(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat(why, "; sign in with: pettube login [USER]"));
}

}  // namespace

Session::Session(std::string config_dir, std::string auth_address, ChannelFactory channels,
                 std::function<absl::Time()> now)
    : config_dir_(std::move(config_dir)),
      auth_address_(std::move(auth_address)),
      channels_(std::move(channels)),
      now_(std::move(now)) {}

absl::StatusOr<std::unique_ptr<auth::v1::TokenExchange::Stub>> Session::ExchangeStub(
    const std::string& address) {
  auto channel = channels_(address);
  if (!channel.ok()) return channel.status();
  return auth::v1::TokenExchange::NewStub(*channel);
}

absl::StatusOr<Credentials> Session::Exchange(const std::string& address,
                                              const std::string& id_token) {
  auto stub = ExchangeStub(address);
  if (!stub.ok()) return stub.status();
  auth::v1::ExchangeTokenRequest req;
  req.set_subject_token(id_token);
  req.set_subject_token_type("urn:ietf:params:oauth:token-type:id_token");
  *req.mutable_lifetime() = time::ToProto(kAccessTokenLifetime);
  auth::v1::ExchangeTokenResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  const grpc::Status s = (*stub)->ExchangeToken(&ctx, req, &resp);
  if (!s.ok()) return status::FromGrpcStatus(s, absl::StrCat("ExchangeToken at ", address));
  Credentials c;
  c.auth_server = address;
  c.access_token = resp.access_token();
  c.expire_time = time::FromProto(resp.expire_time());
  c.identity = resp.identity().name();
  c.scopes.assign(resp.scopes().begin(), resp.scopes().end());
  return c;
}

absl::StatusOr<auth::v1::MintIdTokenResponse> Session::MintDevIdToken(const std::string& user) {
  auto address = RequireAddress(auth_address_, "auth", "auth-token-exchange");
  if (!address.ok()) return address.status();
  auto channel = channels_(*address);
  if (!channel.ok()) return channel.status();
  auto stub = auth::v1::DevIdentityProvider::NewStub(*channel);
  auth::v1::MintIdTokenRequest req;
  req.set_user(user);
  auth::v1::MintIdTokenResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(ctx);
  const grpc::Status s = stub->MintIdToken(&ctx, req, &resp);
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the development identity provider is off at ", *address,
        " (auth-token-exchange runs without --dev_idp); use pettube login --id_token_file=FILE"));
  }
  if (!s.ok()) return status::FromGrpcStatus(s, absl::StrCat("MintIdToken at ", *address));
  return resp;
}

absl::StatusOr<Credentials> Session::LoginDev(const std::string& user) {
  auto minted = MintDevIdToken(user);  // Checks the address is known.
  if (!minted.ok()) return minted.status();
  auto c = Exchange(auth_address_, minted->id_token());
  if (!c.ok()) return c.status();
  c->login = "dev";
  c->user = user;
  if (auto s = WritePrivateFile(credentials_path(), SerializeCredentials(*c)); !s.ok()) return s;
  return c;
}

absl::StatusOr<Credentials> Session::LoginOidc(const std::string& id_token) {
  auto address = RequireAddress(auth_address_, "auth", "auth-token-exchange");
  if (!address.ok()) return address.status();
  auto c = Exchange(*address, id_token);
  if (!c.ok()) return c.status();
  c->login = "oidc";
  c->id_token = id_token;
  // Kept only to renew; the server re-checks it on every exchange, so an
  // expired one is simply refused then.
  c->id_token_expire_time = absl::InfiniteFuture();
  if (auto s = WritePrivateFile(credentials_path(), SerializeCredentials(*c)); !s.ok()) return s;
  return c;
}

absl::StatusOr<Credentials> Session::Current() {
  auto text = ReadWholeFile(credentials_path());
  if (absl::IsNotFound(text.status())) return NotSignedIn("not signed in");
  if (!text.ok()) return text.status();
  auto c = ParseCredentials(*text);
  if (!c.ok()) {
    return NotSignedIn(absl::StrCat(credentials_path(), " unreadable (", c.status().message(), ")"));
  }
  if (!NeedsRenewal(*c, now_())) return c;

  const std::string address = auth_address_.empty() ? c->auth_server : auth_address_;
  absl::StatusOr<Credentials> renewed = absl::UnknownError("");
  if (c->login == "dev") {
    Session at_address(config_dir_, address, channels_, now_);
    auto minted = at_address.MintDevIdToken(c->user);
    if (!minted.ok()) {
      renewed = minted.status();
    } else {
      renewed = Exchange(address, minted->id_token());
    }
  } else {
    renewed = Exchange(address, c->id_token);
  }
  if (!renewed.ok()) {
    if (now_() < c->expire_time) return c;  // Still valid for a while: use it.
    if (absl::IsUnauthenticated(renewed.status()) || absl::IsInvalidArgument(renewed.status())) {
      return NotSignedIn(absl::StrCat("credentials expired and could not be renewed (",
                                      renewed.status().message(), ")"));
    }
    return renewed.status();
  }
  renewed->login = c->login;
  renewed->user = c->user;
  renewed->id_token = c->id_token;
  renewed->id_token_expire_time = c->id_token_expire_time;
  if (auto s = WritePrivateFile(credentials_path(), SerializeCredentials(*renewed)); !s.ok()) {
    return s;
  }
  return renewed;
}

absl::Status Session::Logout() {
  if (::unlink(credentials_path().c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat(credentials_path(), ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace pettube::cli
