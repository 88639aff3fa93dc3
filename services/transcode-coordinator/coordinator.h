#pragma once

// The transcode coordinator's rules: each media item's transcoding as a
// state machine (the Step Functions of PetTube).
//
//   media.uploaded -> probe -> plan (ladder + poster) -> one job per
//   rendition: PENDING (job.requested in the outbox) -> QUEUED (broker
//   acked it) -> RUNNING (a worker reported) -> SUCCEEDED | FAILED |
//   CANCELLED. Every job SUCCEEDED -> master playlist written ->
//   media.ready. A job FAILED for good -> media.failed. media.deleted ->
//   outstanding jobs CANCELLED (workers watching them stop).
//
// Every transition is one JobStore::Commit holding the new record, the id
// of the event (or request) that caused it and the events to publish
// (transactional outbox), so a redelivered event changes nothing and an
// event decided on is published even across a crash. Events of an older
// job generation (superseded by a retry) are ignored.
//
// Ownership: borrows the store, prober, object writer and sink, which must
// outlive it. Thread-safe: transitions of one media item are serialized by
// a striped lock; different items proceed in parallel.

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "proto/pettube/transcode/v1/transcode.pb.h"
#include "services/transcode-coordinator/coordinator_probe.h"
#include "services/transcode-coordinator/job_store.h"
#include "services/transcode-coordinator/ladder.h"
#include "services/transcode-worker/object_writer.h"

namespace pettube::transcode {

// Probes a source object (ffprobe over HTTP in production). Errors carry a
// FailureReason (failure.h); permanent ones (FAILED_PRECONDITION) fail the
// media, others are retried.
class SourceProber {
 public:
  virtual ~SourceProber() = default;
  virtual absl::StatusOr<pettube::events::v1::SourceInfo> Probe(
      const pettube::events::v1::ObjectRef& source) = 0;
};

// Publishes an event and reports the broker's verdict once (any thread;
// `done` must not block for long).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void Publish(io::cloudevents::v1::CloudEvent event,
                       std::function<void(absl::Status)> done) = 0;
};

class Coordinator {
 public:
  struct Options {
    std::vector<Preset> presets = DefaultPresets();
    LadderOptions ladder;
    // Per-attempt limit a worker enforces.
    absl::Duration job_timeout = absl::Minutes(30);
    // The work queue's max_delivery_attempts (told to workers).
    int max_attempts = 3;
    // CloudEvent source of what we publish.
    std::string event_source = "//pettube/transcode-coordinator";
    // Bucket of the outputs.
    std::string renditions_bucket = "renditions";
    // Metrics; may be null.
    CoordinatorProbe* probe = nullptr;
  };

  // Called with a job after every change of it. Must not block.
  using JobWatcher = std::function<void(const pettube::transcode::v1::Job&)>;

  Coordinator(Options options, JobStore& store, SourceProber& prober, ObjectWriter& objects,
              EventSink& sink);
  // Stops the publish-settling thread.
  ~Coordinator();

  // Publishes whatever the outbox still holds (after a restart).
  absl::Status Start();

  // The subscription handler: applies one event. OK means done (ack),
  // including events that are malformed, foreign or already applied (they
  // are logged and dropped: retrying cannot help). An error means try again
  // later (nack): a source that could not be reached, storage or object
  // store trouble.
  absl::Status Handle(const io::cloudevents::v1::CloudEvent& event);

  // A job.requested the work queue gave up on after `attempts` deliveries
  // (its last worker may have died, so no job.failed came): the job fails
  // with ATTEMPTS_EXHAUSTED and `last_error`, and so does the media.
  // Idempotent; a dead letter of an older generation changes nothing.
  absl::Status OnDeadLetter(const io::cloudevents::v1::CloudEvent& request, int attempts,
                            absl::string_view last_error);

  // --- The API (media ids, job ids are the last name segments).

  // NOT_FOUND when unknown.
  absl::StatusOr<storage::MediaRecord> GetMedia(absl::string_view media_id);
  absl::StatusOr<pettube::transcode::v1::Job> GetJob(absl::string_view media_id,
                                                     absl::string_view job_id);
  // Requeues a FAILED or CANCELLED job as a new generation.
  // FAILED_PRECONDITION otherwise, or when the media was deleted.
  absl::StatusOr<pettube::transcode::v1::Job> RetryJob(absl::string_view media_id,
                                                       absl::string_view job_id);
  // Re-probes and re-plans the whole media item (new generation of every
  // job). FAILED_PRECONDITION while it is transcoding or after deletion.
  absl::StatusOr<storage::MediaRecord> RetryMedia(absl::string_view media_id);
  // Cancels outstanding jobs. FAILED_PRECONDITION when nothing is left to
  // cancel (completed, failed or cancelled already).
  absl::StatusOr<storage::MediaRecord> Cancel(absl::string_view media_id);

  // Registers `watcher` for the job "media/{m}/jobs/{j}" and calls it once
  // with the current state. NOT_FOUND for an unknown job. Returns a handle
  // for Unwatch.
  absl::StatusOr<int64_t> Watch(absl::string_view media_id, absl::string_view job_id,
                                JobWatcher watcher) ABSL_LOCKS_EXCLUDED(watch_mu_);
  void Unwatch(int64_t handle) ABSL_LOCKS_EXCLUDED(watch_mu_);

  // Job resource name.
  static std::string JobName(absl::string_view media_id, absl::string_view job_id);

 private:
  absl::Mutex& LockFor(absl::string_view media_id);

  absl::Status OnUploaded(const std::string& cause, const io::cloudevents::v1::CloudEvent& event);
  absl::Status OnProgressed(const std::string& cause, const io::cloudevents::v1::CloudEvent& event);
  absl::Status OnCompleted(const std::string& cause, const io::cloudevents::v1::CloudEvent& event);
  absl::Status OnFailed(const std::string& cause, const io::cloudevents::v1::CloudEvent& event);
  absl::Status OnDeleted(const std::string& cause, const io::cloudevents::v1::CloudEvent& event);
  // What the three job reports share: unpack a `Report`, skip a cause
  // already applied, load the media and its job under the media's lock,
  // then `apply(report, record, job)`, still under that lock. A report
  // naming no known media or job is dropped with the reason.
  template <typename Report, typename Apply>
  absl::Status OnJobReport(const std::string& cause, const io::cloudevents::v1::CloudEvent& event,
                           Apply apply);

  // Builds the jobs of a fresh plan (generation `job_generation`) into
  // `record` and their job.requested events into `outbox`.
  absl::Status PlanJobs(storage::MediaRecord& record, int64_t job_generation,
                        std::vector<io::cloudevents::v1::CloudEvent>& outbox);
  io::cloudevents::v1::CloudEvent RequestEvent(const storage::MediaRecord& record,
                                               const pettube::transcode::v1::Job& job);
  io::cloudevents::v1::CloudEvent FailedEvent(const storage::MediaRecord& record);
  // Marks the media failed (if transcoding) with the job's error.
  void FailMedia(storage::MediaRecord& record, const pettube::transcode::v1::Job& job,
                 std::vector<io::cloudevents::v1::CloudEvent>& outbox);
  // If every job succeeded: writes the master playlist and marks the media
  // COMPLETED with media.ready in `outbox`. Error when the write failed.
  absl::Status MaybeComplete(storage::MediaRecord& record,
                             std::vector<io::cloudevents::v1::CloudEvent>& outbox);

  // Commits, then notifies watchers and hands the new outbox events to the
  // sink.
  absl::Status CommitAndPublish(JobStore::Write write,
                                std::vector<pettube::transcode::v1::JobState> finished = {});
  absl::Status Dispatch(const std::string& cause, const io::cloudevents::v1::CloudEvent& event);
  void PublishOutbox(std::vector<io::cloudevents::v1::CloudEvent> events);
  void NotifyWatchers(const storage::MediaRecord& record) ABSL_LOCKS_EXCLUDED(watch_mu_);

  // The settle thread: outbox removals and PENDING -> QUEUED after the
  // broker acked job.requested events.
  void SettleLoop();
  void OnPublished(const io::cloudevents::v1::CloudEvent& event);

  const Options options_;
  JobStore& store_;
  SourceProber& prober_;
  ObjectWriter& objects_;
  EventSink& sink_;

  std::array<absl::Mutex, 32> stripes_;

  absl::Mutex watch_mu_;
  int64_t next_watch_ ABSL_GUARDED_BY(watch_mu_) = 1;
  struct WatchEntry {
    std::string job_name;
    JobWatcher watcher;
  };
  absl::flat_hash_map<int64_t, WatchEntry> watchers_ ABSL_GUARDED_BY(watch_mu_);

  absl::Mutex settle_mu_;
  std::deque<io::cloudevents::v1::CloudEvent> published_ ABSL_GUARDED_BY(settle_mu_);
  bool stopping_ ABSL_GUARDED_BY(settle_mu_) = false;
  std::thread settle_thread_;
};

}  // namespace pettube::transcode
