#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/testing/child_process.h"

namespace pettube::testing {

// "services/{name}/{name}" in this test's runfiles: a PetTube service binary.
std::string ServiceBinary(const std::string& name);

class ServiceProcess;

// The common case of ServiceProcess::Start: the service `name` with its own
// flags `args`, a fresh temp dir holding its data_dir ("{dir}/data") and its
// stderr ("{dir}/stderr.log"), ports chosen by the OS.
absl::StatusOr<std::unique_ptr<ServiceProcess>> StartService(
    const std::string& name, std::vector<std::string> args,
    absl::Duration ready_timeout = absl::Seconds(30));

// A PetTube server binary started by a test and up: it printed its
//   ready grpc=HOST:PORT metrics=HOST:PORT [objects=HOST:PORT]
// line, so it listens on the addresses the line names. The one "start a
// binary, wait for ready, read its ports" of the system tests; Stop, Kill
// and Restart (same flags, optionally the same ports) for the ones that
// crash or restart services. Killed on destruction if still running.
// Not thread-safe.
//
//   ServiceProcess::Options options;
//   options.binary = ServiceBinary("broker");
//   options.data_dir = NewTempDir("broker");
//   auto broker = ServiceProcess::Start(options);
//   ASSERT_TRUE(broker.ok()) << broker.status();
//   auto channel = grpc::CreateChannel((*broker)->grpc(), ...);
class ServiceProcess {
 public:
  struct Options {
    // Path of the binary, e.g. ServiceBinary("broker").
    std::string binary;
    // The common flags, given first; "" leaves a flag out.
    std::string listen = "127.0.0.1:0";
    std::string metrics_listen = "127.0.0.1:0";
    std::string data_dir;
    // The binary's own flags, after the common ones.
    std::vector<std::string> args;
    // Where stderr goes; empty: a new temp dir's stderr.log for each start.
    std::string stderr_path;
    absl::Duration ready_timeout = absl::Seconds(30);
  };

  // Starts the binary and waits for its ready line. What ChildProcess::Start
  // and WaitForReady return on failure (messages include the stderr).
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Start(Options options);

  // Addresses from the ready line; "" if the line has no such field.
  const std::string& grpc() const { return grpc_; }
  const std::string& metrics() const { return metrics_; }
  std::string ReadyField(const std::string& key) const;
  const std::string& ready_line() const { return ready_line_; }

  ChildProcess& process() { return *process_; }
  std::string Stderr() const { return process_->Stderr(); }
  const Options& options() const { return options_; }

  // SIGTERM, then its exit code (DEADLINE_EXCEEDED if it did not exit).
  absl::StatusOr<int> Stop(absl::Duration timeout = absl::Seconds(20));
  // SIGKILL, waiting for the exit.
  absl::Status Kill(absl::Duration timeout = absl::Seconds(10));
  // Kills it if still running, then starts it again with the same flags;
  // with `same_ports` on the gRPC and metrics addresses it had, so clients
  // find it where it was.
  absl::Status Restart(bool same_ports);

 private:
  explicit ServiceProcess(Options options) : options_(std::move(options)) {}
  absl::Status Launch();

  Options options_;
  std::unique_ptr<ChildProcess> process_;
  std::string ready_line_;
  std::string grpc_;
  std::string metrics_;
};

}  // namespace pettube::testing
