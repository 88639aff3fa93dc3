#include "libs/server/options.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "libs/log/log.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "gRPC listen address HOST:PORT; port 0 picks a free port");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:0",
          "HTTP listen address for /metrics, HOST:PORT; port 0 picks a free port");
ABSL_FLAG(std::string, data_dir, "",
          "directory for this service's state (default ./data/<service>)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "on SIGTERM, how long in-flight RPCs may take before they are cancelled");

ABSL_FLAG(std::string, tls_cert_file, "", "PEM certificate chain for serving gRPC over TLS");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key for --tls_cert_file");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle; when set, clients must present a certificate it signed (mTLS)");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "check every absl::Mutex acquisition for lock-order cycles (a debugging aid; "
          "Debian's abseil, built without NDEBUG, would otherwise do it on every lock)");
ABSL_FLAG(bool, allow_plaintext, false,
          "serve plaintext gRPC on a non-loopback address (e.g. behind a mesh that adds TLS)");

namespace pettube::server {
namespace {

std::string& ProgramName() {
  static auto* name = new std::string("pettube");
  return *name;
}

[[noreturn]] void Die(absl::string_view message) {
  std::fprintf(stderr, "%s: %.*s\n", ProgramName().c_str(), static_cast<int>(message.size()),
               message.data());
  std::exit(2);
}

}  // namespace

absl::Status ParseHostPort(absl::string_view flag, absl::string_view address, std::string* host,
                           int* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": must be HOST:PORT, got \"", address, "\""));
  }
  absl::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": port must be 0-65535, got \"", address.substr(colon + 1), "\""));
  }
  *host = std::string(h);
  *port = p;
  return absl::OkStatus();
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

absl::Status PrepareDataDir(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("data_dir ", path, ": cannot create: ", ec.message()));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("data_dir ", path, ": not a directory"));
  }
  if (::access(path.c_str(), R_OK | W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("data_dir ", path, ": not readable and writable: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

Options ParseFlagsOrExit(int argc, char** argv, absl::string_view service_name) {
  ProgramName() = std::string(service_name);
  log::SetService(service_name);

  // Before any thread starts: see the header.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::SetProgramUsageMessage(
      absl::StrCat("PetTube ", service_name, " service. Flags: --listen, --metrics_listen, ",
                   "--data_dir, --log_level, --drain_timeout and the service's own."));
  // Unknown flags make ParseCommandLine print "ERROR: Unknown command line
  // flag 'x'" and exit 1.
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    Die(absl::StrCat("unexpected argument \"", positional[1], "\" (flags are --name=value)"));
  }

  // Before the server's threads take any lock. Debian builds abseil
  // without NDEBUG, so its debug-mode default tracks every mutex in a
  // global graph on each Lock and destruction (4% of a small RPC's CPU).
  absl::SetMutexDeadlockDetectionMode(absl::GetFlag(FLAGS_mutex_deadlock_detection)
                                          ? absl::OnDeadlockCycle::kAbort
                                          : absl::OnDeadlockCycle::kIgnore);

  Options opts;
  opts.service_name = std::string(service_name);
  opts.listen = absl::GetFlag(FLAGS_listen);
  opts.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  opts.data_dir = absl::GetFlag(FLAGS_data_dir);
  opts.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  if (opts.data_dir.empty()) opts.data_dir = absl::StrCat("data/", service_name);
  opts.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  opts.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  opts.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  opts.allow_plaintext = absl::GetFlag(FLAGS_allow_plaintext);

  auto level = log::ParseLevel(absl::GetFlag(FLAGS_log_level));
  if (!level.ok()) Die(level.status().message());
  log::SetMinLevel(*level);

  std::string host;
  int port;
  if (auto s = ParseHostPort("listen", opts.listen, &host, &port); !s.ok()) Die(s.message());
  if (opts.tls_cert_file.empty() != opts.tls_key_file.empty()) {
    Die("tls_cert_file and tls_key_file: give both or neither");
  }
  if (opts.tls_cert_file.empty() && !opts.allow_plaintext && !IsLoopbackHost(host)) {
    Die(absl::StrCat("listen ", opts.listen,
                     ": plaintext is served only on loopback; give --tls_cert_file and "
                     "--tls_key_file, or --allow_plaintext"));
  }
  if (auto s = ParseHostPort("metrics_listen", opts.metrics_listen, &host, &port); !s.ok()) {
    Die(s.message());
  }
  if (opts.drain_timeout < absl::ZeroDuration()) Die("drain_timeout: must not be negative");
  if (auto s = PrepareDataDir(opts.data_dir); !s.ok()) Die(s.message());
  return opts;
}

int ExitWith(const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", ProgramName().c_str(), std::string(status.message()).c_str());
  return 1;
}

}  // namespace pettube::server
