#pragma once

// Flags every PetTube binary shares, and start-up error reporting.
//
//   --listen=HOST:PORT          gRPC address (port 0 picks a free port)
//   --metrics_listen=HOST:PORT  HTTP address of /metrics (port 0: free port)
//   --data_dir=PATH             where the service keeps its state
//   --log_level=info            debug, info, warning, error
//   --drain_timeout=10s         how long in-flight RPCs get on SIGTERM
//   --tls_cert_file, --tls_key_file   serve gRPC over TLS with these PEM files
//   --tls_client_ca_file        also require client certificates from this CA
//   --allow_plaintext           plaintext on a non-loopback address (else refused)
//
// A service's own flags are ABSL_FLAGs in its main.cc.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pettube::server {

struct Options {
  std::string service_name;
  std::string listen;
  std::string metrics_listen;
  std::string data_dir;
  absl::Duration drain_timeout;
  // TLS: both set, or neither (plaintext, loopback only unless allowed).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  bool allow_plaintext = false;
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(absl::string_view host);

// Parses the command line, validates the shared flags and prepares
// --data_dir (created if missing, must be a writable directory). On any
// error prints one line to stderr and exits 2. Also blocks SIGTERM and
// SIGINT in the calling thread, before any other thread exists, so every
// thread inherits the mask and Serve() alone receives them with sigwait.
// Call first thing in main().
Options ParseFlagsOrExit(int argc, char** argv, absl::string_view service_name);

// Prints "<program>: <status message>" to stderr; returns the exit code (1).
// For start-up failures after flag parsing (storage cannot open, ...).
int ExitWith(const absl::Status& status);

// Creates `path` (and parents) if missing and checks it is a writable
// directory. Exposed for tests.
absl::Status PrepareDataDir(const std::string& path);

// Splits "host:port" ("[::1]:0" too). INVALID_ARGUMENT names `flag`.
absl::Status ParseHostPort(absl::string_view flag, absl::string_view address, std::string* host,
                           int* port);

}  // namespace pettube::server
