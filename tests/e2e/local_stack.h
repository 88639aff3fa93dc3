#pragma once

// The whole PetTube suite as real processes for end-to-end tests, wired
// like scripts/up.sh: auth-token-exchange (--dev_idp, workload clients),
// broker (verifying tokens), upload (with its object listener),
// media-catalog, transcode-coordinator and one transcode-worker (or, when
// asked for, transcode-supervisor starting workers itself), each on
// 127.0.0.1:0 with its own data directory under `dir`. Services can be
// stopped, killed and started again on the same data (new ports; the
// others are not told, so restart only what nothing else dials: the
// catalog, the coordinator, the worker; or the broker and upload, which
// others reach through --broker_server / --upload_server only at start:
// see Restart). Not thread-safe.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/testing/service_process.h"

namespace pettube::e2e {

class LocalStack {
 public:
  // Service names, in start order.
  static const std::vector<std::string>& AllServices();

  // Writes secrets and keys under `dir` and starts `services` (default all)
  // in order. `runfiles_root`: where services/<name>/<name> are found.
  static absl::StatusOr<std::unique_ptr<LocalStack>> Start(
      const std::string& dir, const std::string& runfiles_root,
      std::vector<std::string> services = AllServices());

  ~LocalStack();  // SIGTERM to everything still running, in reverse order.

  // Starts (or starts again, on the same data directory) one service and
  // waits for its ready line. Services started after the broker or upload
  // dial their current address, so restart the broker / upload with
  // `same_port` to keep the address the others hold.
  absl::Status StartService(const std::string& name, bool same_port = false);

  // SIGTERM (clean drain) or SIGKILL, then waits for the exit.
  absl::StatusOr<int> StopService(const std::string& name, int signal_number);

  bool Running(const std::string& name) const;
  // Process id of a running service, -1 otherwise.
  pid_t Pid(const std::string& name) const;
  std::string Grpc(const std::string& name) const;
  // The upload service's object listener, "HOST:PORT".
  std::string Objects() const;
  // KEY=VALUE lines as scripts/up.sh writes them (for the pettube CLI).
  std::string EndpointsFile() const;
  std::string SecretFile(const std::string& client) const;
  std::string LogPath(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  LocalStack() = default;
  std::vector<std::string> ArgsFor(const std::string& name) const;

  std::string dir_;
  std::string runfiles_root_;
  std::vector<std::string> started_order_;
  std::map<std::string, std::unique_ptr<testing::ServiceProcess>> processes_;
  std::map<std::string, std::string> grpc_;
  std::map<std::string, std::string> metrics_;
  std::string objects_;
};

}  // namespace pettube::e2e
