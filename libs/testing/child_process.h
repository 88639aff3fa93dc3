#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pettube::testing {

// A real binary started by a test: stdout on a pipe (for the `ready` line),
// stderr captured to a file. Killed with SIGKILL on destruction if still
// running, so a failing test never leaves a process behind.
// Not thread-safe.
class ChildProcess {
 public:
  // Starts `binary` with `args`; stderr goes to `stderr_path`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::string& binary,
                                                             const std::vector<std::string>& args,
                                                             const std::string& stderr_path);
  ~ChildProcess();

  // Waits for a stdout line starting with "ready " and returns it.
  // DEADLINE_EXCEEDED after `timeout`; FAILED_PRECONDITION if the process
  // closed stdout (exited) first; messages include its stderr.
  absl::StatusOr<std::string> WaitForReady(absl::Duration timeout);

  // Waits for the process to exit: its exit code, or 128 + signal number if
  // a signal killed it. DEADLINE_EXCEEDED after `timeout`.
  absl::StatusOr<int> WaitForExit(absl::Duration timeout);

  void Signal(int signal_number);
  pid_t pid() const { return pid_; }

  // Everything the process wrote to stderr so far.
  std::string Stderr() const;

 private:
  ChildProcess() = default;

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int pid_fd_ = -1;
  bool exited_ = false;
  int exit_code_ = 0;
  std::string stdout_buffer_;
  std::string stderr_path_;
};

// Value of `key` in a `ready grpc=... metrics=...` line, or "".
std::string ReadyField(const std::string& ready_line, const std::string& key);

// Path of a binary in this test's runfiles, e.g. "services/broker/broker".
std::string RunfilePath(const std::string& workspace_relative);

// A fresh directory under $TEST_TMPDIR.
std::string NewTempDir(const std::string& name);

}  // namespace pettube::testing
