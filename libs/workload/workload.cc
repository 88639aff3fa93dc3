#include "libs/workload/workload.h"

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/client/channel.h"
#include "libs/fs/read_file.h"

ABSL_FLAG(std::string, auth_server, "", "auth-token-exchange gRPC address");
ABSL_FLAG(std::string, broker_server, "", "broker gRPC address");
ABSL_FLAG(std::string, client_id, "", "this service's workload client id");
ABSL_FLAG(std::string, client_secret_file, "", "file holding the workload client secret");
ABSL_FLAG(std::string, auth_issuer, "pettube-auth", "\"iss\" of accepted access tokens");
ABSL_FLAG(std::string, auth_audience, "pettube", "\"aud\" of accepted access tokens");

namespace pettube::workload {

std::function<void(grpc::ClientContext&)> Workload::ConfigureContext() const {
  return [tokens = tokens](grpc::ClientContext& context) {
    if (tokens != nullptr) (void)tokens->Attach(context);
  };
}

absl::StatusOr<Workload> FromFlags(std::vector<std::string> scopes) {
  const client::ChannelOptions channel_options = client::ChannelOptionsFromFlags();
  const std::string auth_server = absl::GetFlag(FLAGS_auth_server);
  if (auth_server.empty()) {
    return absl::InvalidArgumentError("auth_server: required (auth-token-exchange address)");
  }
  Workload w;
  auto auth_channel = client::MakeChannel(auth_server, channel_options);
  if (!auth_channel.ok()) return auth_channel.status();
  w.auth_channel = *auth_channel;
  if (const std::string broker = absl::GetFlag(FLAGS_broker_server); !broker.empty()) {
    auto broker_channel = client::MakeChannel(broker, channel_options);
    if (!broker_channel.ok()) return broker_channel.status();
    w.broker_channel = *broker_channel;
  }
  if (const std::string id = absl::GetFlag(FLAGS_client_id); !id.empty()) {
    const std::string path = absl::GetFlag(FLAGS_client_secret_file);
    if (path.empty()) {
      return absl::InvalidArgumentError("client_secret_file: required with --client_id");
    }
    auto secret = fs::ReadFile("client_secret_file", path);
    if (!secret.ok()) return secret.status();
    w.tokens = std::make_shared<auth::WorkloadTokenSource>(
        w.auth_channel, id, std::string(absl::StripTrailingAsciiWhitespace(*secret)), std::move(scopes));
  }
  w.authenticator = std::make_shared<auth::Authenticator>(
      auth::Authenticator::Options{absl::GetFlag(FLAGS_auth_issuer),
                                   absl::GetFlag(FLAGS_auth_audience)},
      auth::GrpcJwksSource(w.auth_channel));
  return w;
}

}  // namespace pettube::workload
