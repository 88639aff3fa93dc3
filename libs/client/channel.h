#pragma once

// Outgoing gRPC channels, with the same transport rule servers follow:
// TLS, or plaintext only to a loopback address unless explicitly allowed.
//
//   --tls_ca_file=PEM        trust these CAs (TLS to non-loopback targets)
//   --tls_client_cert_file / --tls_client_key_file   present a client certificate (mTLS)
//   --allow_plaintext_client plaintext to non-loopback targets (e.g. inside a mesh)

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace pettube::client {

struct ChannelOptions {
  std::string tls_ca_file;
  std::string tls_client_cert_file;
  std::string tls_client_key_file;
  bool allow_plaintext = false;
};

// The options from the flags above.
ChannelOptions ChannelOptionsFromFlags();

// A channel to `target` ("host:port", "dns:///host:port"). TLS when a CA
// file is given or the host is not loopback; FAILED_PRECONDITION when that
// would mean plaintext to a remote host without allow_plaintext.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& target,
                                                           const ChannelOptions& options);

}  // namespace pettube::client
