#include "libs/client/channel.h"

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "libs/fs/read_file.h"

ABSL_FLAG(std::string, tls_ca_file, "", "PEM CA bundle trusted for outgoing gRPC over TLS");
ABSL_FLAG(std::string, tls_client_cert_file, "", "PEM client certificate for outgoing mTLS");
ABSL_FLAG(std::string, tls_client_key_file, "", "PEM key of --tls_client_cert_file");
ABSL_FLAG(bool, allow_plaintext_client, false,
          "connect without TLS to non-loopback targets (e.g. inside a mesh that adds TLS)");

namespace pettube::client {
namespace {

// "dns:///a:1" -> "a"; "[::1]:5" -> "::1"; "127.0.0.1:5" -> "127.0.0.1".
std::string HostOf(absl::string_view target) {
  absl::ConsumePrefix(&target, "dns:///");
  absl::ConsumePrefix(&target, "ipv4:");
  absl::ConsumePrefix(&target, "ipv6:");
  if (absl::StartsWith(target, "[")) {
    const size_t end = target.find(']');
    return std::string(target.substr(1, end == absl::string_view::npos ? end : end - 1));
  }
  const size_t colon = target.rfind(':');
  return std::string(target.substr(0, colon));
}

bool IsLoopback(absl::string_view host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

}  // namespace

ChannelOptions ChannelOptionsFromFlags() {
  ChannelOptions o;
  o.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  o.tls_client_cert_file = absl::GetFlag(FLAGS_tls_client_cert_file);
  o.tls_client_key_file = absl::GetFlag(FLAGS_tls_client_key_file);
  o.allow_plaintext = absl::GetFlag(FLAGS_allow_plaintext_client);
  return o;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const ChannelOptions& options) {
  grpc::ChannelArguments args;
  // Streams are long-lived; keepalive notices a dead peer without polling
  // application state.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetMaxReceiveMessageSize(16 << 20);
  const bool loopback = IsLoopback(HostOf(target));
  if (options.tls_ca_file.empty() && (loopback || options.allow_plaintext)) {
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }
  if (options.tls_ca_file.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        target, ": plaintext only to loopback; give --tls_ca_file or --allow_plaintext_client"));
  }
  grpc::SslCredentialsOptions ssl;
  auto ca = fs::ReadFile("tls_ca_file", options.tls_ca_file);
  if (!ca.ok()) return ca.status();
  ssl.pem_root_certs = *ca;
  if (!options.tls_client_cert_file.empty()) {
    auto cert = fs::ReadFile("tls_client_cert_file", options.tls_client_cert_file);
    if (!cert.ok()) return cert.status();
    auto key = fs::ReadFile("tls_client_key_file", options.tls_client_key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
}

}  // namespace pettube::client
