#pragma once

// Runs one transcode job end to end on this machine: ffmpeg into a private
// temporary directory (removed afterwards, whatever happens), ffprobe of
// the outputs, upload to the renditions bucket, and the completion facts
// (size, duration, bitrates, codecs, SHA-256). Cancellation and the job's
// timeout kill ffmpeg. Thread-safe: each Run is independent.

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/credentials/token_source.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "services/transcode-worker/ffmpeg_commands.h"
#include "services/transcode-worker/object_writer.h"
#include "services/transcode-worker/progress.h"
#include "services/transcode-worker/subprocess.h"

namespace pettube::transcode {

// Stops a running job from another thread: kills the ffmpeg it runs (now
// or, if between two processes, the next one at its start). Thread-safe.
class CancelToken {
 public:
  void Cancel(absl::string_view why) ABSL_LOCKS_EXCLUDED(mu_);
  bool cancelled() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string reason() const ABSL_LOCKS_EXCLUDED(mu_);
  // The process to kill on Cancel (null to detach). Returns false, and
  // kills it at once, when already cancelled.
  bool Attach(Subprocess* process) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::string reason_ ABSL_GUARDED_BY(mu_);
  Subprocess* process_ ABSL_GUARDED_BY(mu_) = nullptr;
};

class JobRunner {
 public:
  struct Options {
    FfmpegPaths paths;
    // Directory for per-job temporary directories.
    std::string scratch_dir;
    // URL ffmpeg reads a source from; default: ObjectUrl(objects_url, ref).
    std::string objects_url;
    std::function<std::string(const pettube::events::v1::ObjectRef&)> source_url;
    // Name reported in events.
    std::string worker;
    // Least time between two progress reports.
    absl::Duration progress_interval = absl::Seconds(1);
  };

  // Called with progress, rate-limited. Must not block for long.
  using ProgressFn = std::function<void(const ProgressUpdate& update, double fraction)>;

  // `read_tokens` (objects.read) may be null: no Authorization header.
  JobRunner(Options options, ObjectWriter& objects, std::shared_ptr<auth::TokenSource> read_tokens);

  // Produces and stores the job's outputs. Errors carry a FailureReason:
  // TRANSCODE_FAILED with ffmpeg's own last error line, JOB_TIMEOUT,
  // OUTPUT_WRITE_FAILED, SOURCE_UNREADABLE (UNAVAILABLE); CANCELLED when
  // `cancel` fired. `attempt` is the delivery attempt (reported back).
  absl::StatusOr<pettube::events::v1::TranscodeJobCompleted> Run(
      const pettube::events::v1::TranscodeJobRequested& job, int attempt, CancelToken& cancel,
      const ProgressFn& progress);

  // Removes everything under the scratch directory (at start: what a
  // killed worker left).
  absl::Status SweepScratch();

 private:
  // Runs one command; an error status unless it exited 0.
  absl::Status RunCommand(const std::string& what, std::vector<std::string> argv,
                          absl::Time deadline, CancelToken& cancel,
                          const std::function<void(absl::string_view)>& on_line,
                          std::string* stdout_text);

  const Options options_;
  ObjectWriter& objects_;
  std::shared_ptr<auth::TokenSource> read_tokens_;
};

}  // namespace pettube::transcode
