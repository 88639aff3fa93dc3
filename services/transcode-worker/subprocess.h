#pragma once

// Running a helper program (ffmpeg, ffprobe) the safe way: an argument
// vector and a clean environment, never a shell; stdin from /dev/null;
// stdout streamed line by line or captured; the tail of stderr kept for the
// error message; a deadline and cancellation that kill it (SIGKILL); and
// the child dies with us (PR_SET_PDEATHSIG), so a SIGKILLed worker leaves no
// ffmpeg behind.
//
//   Subprocess::Options o;
//   o.argv = {"/usr/bin/ffprobe", "-v", "error", url};
//   o.timeout = absl::Seconds(30);
//   auto p = Subprocess::Start(o);
//   if (!p.ok()) ...;
//   Subprocess::Result r = (*p)->Wait();

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pettube::transcode {

// One child process. Start, then Wait from one thread; Cancel from any.
class Subprocess {
 public:
  struct Options {
    // argv[0] is the program's path (not searched on PATH).
    std::vector<std::string> argv;
    // The whole environment of the child.
    std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
    // Killed when still running after this long.
    absl::Duration timeout = absl::InfiniteDuration();
    // When set, called with each stdout line (without the newline) as it
    // arrives, on the Wait thread; stdout is then not captured.
    std::function<void(absl::string_view)> on_stdout_line;
    // Captured stdout beyond this is dropped (and `stdout_truncated` set).
    size_t max_stdout_bytes = size_t{16} << 20;
    // Only the last this-many bytes of stderr are kept.
    size_t stderr_tail_bytes = 64 << 10;
    // The child writes to our stderr instead (nothing is captured).
    bool inherit_stderr = false;
    // The child gets SIGKILL when the thread that started it exits (so a
    // killed parent leaves no orphan). Start from a long-lived thread.
    bool die_with_parent = true;
  };

  struct Result {
    // Exit status when it exited, else -1.
    int exit_code = -1;
    // Signal that ended it, else 0.
    int signal = 0;
    // Killed because the timeout passed.
    bool timed_out = false;
    // Killed because Cancel was called.
    bool cancelled = false;
    std::string stdout_text;
    bool stdout_truncated = false;
    std::string stderr_tail;
    // Wall time from start to exit.
    absl::Duration elapsed;

    bool ok() const { return exit_code == 0; }
  };

  // Starts the program. INVALID_ARGUMENT for an empty argv, INTERNAL when
  // pipes or fork fail. A program that cannot be executed shows as exit
  // code 127 with the reason on stderr.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(Options options);

  // Kills a still running child and reaps it.
  ~Subprocess();

  // Reads its output until it exits (or the timeout / Cancel kills it) and
  // reaps it. Call once.
  Result Wait();

  // Kills the child (SIGKILL) if it runs; Wait then reports `cancelled`.
  // Thread-safe, idempotent.
  void Cancel() ABSL_LOCKS_EXCLUDED(mu_);

  // Sends `signal_number` to the child unless it was already reaped.
  // Thread-safe.
  void Signal(int signal_number) ABSL_LOCKS_EXCLUDED(mu_);

  pid_t pid() const { return pid_; }

 private:
  Subprocess() = default;

  Options options_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  // Written by Cancel to wake the Wait loop.
  int wake_read_fd_ = -1;
  int wake_write_fd_ = -1;
  absl::Time start_;

  absl::Mutex mu_;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  // Once reaped the pid may belong to another process: never signal it.
  bool reaped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace pettube::transcode
