#pragma once

// One transcode worker: the handler of its work-queue deliveries (one at a
// time). For each job.requested it checks with the coordinator that the job
// is still wanted (WatchJob, held while working: cancellation, a retry that
// superseded it or another worker finishing first stop ffmpeg at once),
// runs the JobRunner, publishes rate-limited job.progressed events, then
// job.completed (acked only once the broker stored it) or job.failed with
// ffmpeg's own error line (nacked, so the broker retries and finally
// dead-letters it). On drain the job in hand gets until the drain deadline,
// then is handed back (nack) for another worker. After `idle_exit` without
// a job it asks the process to stop (scale to zero).
//
// Thread-safe; borrows runner, publisher and watcher.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/credentials/token_source.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "proto/pettube/transcode/v1/transcode.grpc.pb.h"
#include "services/transcode-worker/job_runner.h"
#include "services/transcode-worker/worker_probe.h"

namespace pettube::transcode {

// Where the worker's events go.
class WorkerEvents {
 public:
  virtual ~WorkerEvents() = default;
  // Stored by the broker (OK) or not, within `timeout`.
  virtual absl::Status PublishAndWait(io::cloudevents::v1::CloudEvent event,
                                      absl::Duration timeout) = 0;
  // Best effort (progress).
  virtual void PublishAsync(io::cloudevents::v1::CloudEvent event) = 0;
};

// Holds a WatchJob stream; the destructor ends it. Calls `on_job` (on its
// own thread) with each state, then `on_end` once when the stream ends
// (coordinator unreachable, refused, or the job final).
class JobWatch {
 public:
  virtual ~JobWatch() = default;
};
class JobWatcher {
 public:
  virtual ~JobWatcher() = default;
  virtual std::unique_ptr<JobWatch> Watch(const std::string& job_name,
                                          std::function<void(const v1::Job&)> on_job,
                                          std::function<void()> on_end) = 0;
};

// JobWatcher over the coordinator's gRPC WatchJob.
class GrpcJobWatcher : public JobWatcher {
 public:
  GrpcJobWatcher(std::shared_ptr<grpc::Channel> channel, std::shared_ptr<auth::TokenSource> tokens);
  std::unique_ptr<JobWatch> Watch(const std::string& job_name,
                                  std::function<void(const v1::Job&)> on_job,
                                  std::function<void()> on_end) override;

 private:
  std::unique_ptr<v1::TranscodeCoordinator::Stub> stub_;
  std::shared_ptr<auth::TokenSource> tokens_;
};

class Worker {
 public:
  struct Options {
    std::string name;
    // Exit after this long without a job; zero: never.
    absl::Duration idle_exit = absl::ZeroDuration();
    // On drain, how long the job in hand may still run.
    absl::Duration drain_deadline = absl::Seconds(20);
    // How long to wait for the coordinator's first answer on a job.
    absl::Duration watch_first_wait = absl::Seconds(2);
    std::string event_source = "//pettube/transcode-worker";
    // Metrics; may be null.
    WorkerProbe* probe = nullptr;
  };

  // `watcher` may be null (no coordinator: every job is worked on).
  Worker(Options options, JobRunner& runner, WorkerEvents& events, JobWatcher* watcher);
  ~Worker();

  // The Subscriber handler. OK acks (done, skipped, or malformed); an error
  // nacks with it as the broker's last error.
  absl::Status Handle(const pettube::broker::v1::Delivery& delivery) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops for good: the job in hand gets `drain_deadline`, then is
  // cancelled and handed back.
  void BeginDrain() ABSL_LOCKS_EXCLUDED(mu_);

  // Starts the idle timer: `on_idle` is called once, when no job came for
  // idle_exit (never if idle_exit is zero).
  void StartIdleTimer(std::function<void()> on_idle) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  io::cloudevents::v1::CloudEvent Event(absl::string_view type, absl::string_view media,
                                        const google::protobuf::Message& payload,
                                        absl::string_view id);
  void IdleLoop(std::function<void()> on_idle) ABSL_LOCKS_EXCLUDED(mu_);
  void Count(absl::string_view result, absl::Time start);
  void DrainLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  JobRunner& runner_;
  WorkerEvents& events_;
  JobWatcher* watcher_;

  absl::Mutex mu_;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t jobs_started_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  CancelToken* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread idle_thread_;
  std::thread drain_thread_;
};

}  // namespace pettube::transcode
