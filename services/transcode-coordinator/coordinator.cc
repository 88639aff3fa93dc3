#include "services/transcode-coordinator/coordinator.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/broker_client/event_builder.h"
#include "libs/log/log.h"
#include "libs/time/proto_time.h"
#include "services/transcode-coordinator/failure.h"
#include "services/transcode-coordinator/master_playlist.h"

namespace pettube::transcode {
namespace {

namespace ev = ::pettube::events::v1;
namespace tv = ::pettube::transcode::v1;
using ::io::cloudevents::v1::CloudEvent;

constexpr char kUploaded[] = "pettube.media.uploaded";
constexpr char kRequested[] = "pettube.transcode.job.requested";
constexpr char kProgressed[] = "pettube.transcode.job.progressed";
constexpr char kCompleted[] = "pettube.transcode.job.completed";
constexpr char kJobFailed[] = "pettube.transcode.job.failed";
constexpr char kReady[] = "pettube.media.ready";
constexpr char kMediaFailed[] = "pettube.media.failed";
constexpr char kDeleted[] = "pettube.media.deleted";

bool ValidSegment(absl::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 128) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// "media/{id}" -> id; "" when malformed.
std::string MediaIdOf(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "media/") || !ValidSegment(name)) return "";
  return std::string(name);
}

// "media/{m}/jobs/{j}" -> (m, j); empty when malformed.
std::pair<std::string, std::string> JobIdsOf(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() != 4 || parts[0] != "media" || parts[2] != "jobs" || !ValidSegment(parts[1]) ||
      !ValidSegment(parts[3])) {
    return {};
  }
  return {std::string(parts[1]), std::string(parts[3])};
}

bool IsFinal(tv::JobState s) { return s == tv::SUCCEEDED || s == tv::FAILED || s == tv::CANCELLED; }

tv::Job* FindJob(storage::MediaRecord& record, absl::string_view name) {
  for (auto& job : *record.mutable_jobs()) {
    if (job.name() == name) return &job;
  }
  return nullptr;
}

void Touch(storage::MediaRecord& record, tv::Job* job, const std::string& cause) {
  const auto now = time::ToProto(absl::Now());
  *record.mutable_update_time() = now;
  record.set_last_cause(cause);
  if (job != nullptr) *job->mutable_update_time() = now;
}

// A dropped event: logged, acked.
absl::Status Drop(absl::string_view why, const CloudEvent& event) {
  log::Warning("coordinator.event_dropped",
               {{"type", event.type()}, {"id", event.id()}, {"why", why}});
  return absl::OkStatus();
}

}  // namespace

std::string Coordinator::JobName(absl::string_view media_id, absl::string_view job_id) {
  return absl::StrCat("media/", media_id, "/jobs/", job_id);
}

Coordinator::Coordinator(Options options, JobStore& store, SourceProber& prober,
                         ObjectWriter& objects, EventSink& sink)
    : options_(std::move(options)), store_(store), prober_(prober), objects_(objects), sink_(sink) {
  settle_thread_ = std::thread([this] { SettleLoop(); });
}

Coordinator::~Coordinator() {
  {
    absl::MutexLock lock(&settle_mu_);
    stopping_ = true;
  }
  settle_thread_.join();
}

absl::Mutex& Coordinator::LockFor(absl::string_view media_id) {
  return stripes_[absl::Hash<absl::string_view>()(media_id) % stripes_.size()];
}

absl::Status Coordinator::Start() {
  auto outbox = store_.LoadOutbox();
  if (!outbox.ok()) return outbox.status();
  if (!outbox->empty()) {
    log::Info("coordinator.outbox_resume", {{"events", static_cast<int64_t>(outbox->size())}});
  }
  PublishOutbox(std::move(*outbox));
  return absl::OkStatus();
}

absl::Status Coordinator::Handle(const CloudEvent& event) {
  const std::string cause = absl::StrCat(event.source(), " ", event.id());
  absl::Status s = Dispatch(cause, event);
  if (options_.probe != nullptr) options_.probe->EventHandled(event.type(), s.ok());
  return s;
}

absl::Status Coordinator::Dispatch(const std::string& cause, const CloudEvent& event) {
  const std::string& type = event.type();
  if (type == kUploaded) return OnUploaded(cause, event);
  if (type == kProgressed) return OnProgressed(cause, event);
  if (type == kCompleted) return OnCompleted(cause, event);
  if (type == kJobFailed) return OnFailed(cause, event);
  if (type == kDeleted) return OnDeleted(cause, event);
  return Drop("type not handled", event);
}

// ------------------------------------------------------------ events

absl::Status Coordinator::OnUploaded(const std::string& cause, const CloudEvent& event) {
  ev::MediaUploaded uploaded;
  if (auto s = broker_client::UnpackPayload(event, &uploaded); !s.ok()) {
    return Drop(s.message(), event);
  }
  const std::string media_id = MediaIdOf(uploaded.media());
  if (media_id.empty()) return Drop("media: not \"media/{id}\"", event);
  if (!ValidSegment(uploaded.owner())) return Drop("owner: not a key segment", event);
  {
    absl::MutexLock lock(&LockFor(media_id));
    auto seen = store_.HasCause(cause);
    if (!seen.ok()) return seen.status();
    if (*seen) return absl::OkStatus();
    auto existing = store_.GetMedia(media_id);
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) return Drop("media already planned", event);
  }
  // Probe without the lock: it reads the source over HTTP.
  absl::StatusOr<ev::SourceInfo> info =
      uploaded.source().size_bytes() == 0
          ? absl::StatusOr<ev::SourceInfo>(
                SourceFailure(ev::SOURCE_EMPTY, "source: the file is empty (0 bytes)"))
          : prober_.Probe(uploaded.source());
  if (options_.probe != nullptr) {
    options_.probe->Probed(info.ok() ? "ok" : IsPermanent(info.status()) ? "refused" : "retry");
  }
  if (!info.ok() && !IsPermanent(info.status())) {
    log::Warning("coordinator.probe_retry", {{"media", media_id}, {"status", info.status()}});
    return info.status();
  }
  absl::MutexLock lock(&LockFor(media_id));
  auto seen = store_.HasCause(cause);
  if (!seen.ok()) return seen.status();
  if (*seen) return absl::OkStatus();
  auto existing = store_.GetMedia(media_id);
  if (!existing.ok()) return existing.status();
  // A delete that overtook the upload left a tombstone.
  if (existing->has_value()) return Drop("media already planned or deleted", event);

  storage::MediaRecord record;
  record.set_media_id(media_id);
  record.set_owner(uploaded.owner());
  record.set_title(uploaded.title());
  *record.mutable_source() = uploaded.source();
  record.set_generation(1);
  *record.mutable_create_time() = time::ToProto(absl::Now());
  Touch(record, nullptr, cause);
  JobStore::Write write;
  write.cause = cause;
  if (!info.ok()) {
    record.set_state(tv::PLAN_FAILED);
    record.set_error(std::string(info.status().message()));
    record.set_reason(FailureReasonOf(info.status()));
    write.outbox_add.push_back(FailedEvent(record));
    log::Info("coordinator.source_refused", {{"media", media_id},
                                             {"reason", ev::FailureReason_Name(record.reason())},
                                             {"error", record.error()}});
  } else {
    *record.mutable_source_info() = *info;
    record.set_state(tv::TRANSCODING);
    if (auto s = PlanJobs(record, 1, write.outbox_add); !s.ok()) {
      record.set_state(tv::PLAN_FAILED);
      record.set_error(std::string(s.message()));
      record.set_reason(ev::SOURCE_OUT_OF_RANGE);
      record.clear_jobs();
      write.outbox_add.clear();
      write.outbox_add.push_back(FailedEvent(record));
    }
    log::Info("coordinator.planned",
              {{"media", media_id},
               {"jobs", record.jobs_size()},
               {"source", absl::StrCat(info->display_width(), "x", info->display_height())}});
  }
  write.media = std::move(record);
  return CommitAndPublish(std::move(write));
}

absl::Status Coordinator::PlanJobs(storage::MediaRecord& record, int64_t job_generation,
                                   std::vector<CloudEvent>& outbox) {
  auto ladder = PlanLadder(record.source_info(), options_.presets, options_.ladder);
  if (!ladder.ok()) return ladder.status();
  record.clear_jobs();
  const auto now = time::ToProto(absl::Now());
  const std::string prefix = absl::StrCat(record.owner(), "/", record.media_id(), "/");
  for (const ev::RenditionSpec& spec : *ladder) {
    tv::Job* job = record.add_jobs();
    job->set_name(JobName(record.media_id(), spec.name()));
    *job->mutable_rendition() = spec;
    job->set_state(tv::PENDING);
    job->set_generation(job_generation);
    *job->mutable_create_time() = now;
    *job->mutable_update_time() = now;
    job->set_output_key(spec.kind() == ev::POSTER ? absl::StrCat(prefix, "poster.jpg")
                                                  : absl::StrCat(prefix, spec.name(), ".mp4"));
    outbox.push_back(RequestEvent(record, *job));
  }
  return absl::OkStatus();
}

CloudEvent Coordinator::RequestEvent(const storage::MediaRecord& record, const tv::Job& job) {
  ev::TranscodeJobRequested request;
  request.set_job(job.name());
  request.set_media(absl::StrCat("media/", record.media_id()));
  request.set_owner(record.owner());
  *request.mutable_source() = record.source();
  *request.mutable_rendition() = job.rendition();
  request.set_output_key(job.output_key());
  request.set_generation(job.generation());
  if (job.rendition().kind() == ev::VIDEO) {
    const std::string hls = absl::StrCat(record.owner(), "/", record.media_id(), "/hls/");
    request.set_hls_playlist_key(absl::StrCat(hls, job.rendition().name(), ".m3u8"));
    request.set_hls_media_key(absl::StrCat(hls, job.rendition().name(), ".mp4"));
  }
  *request.mutable_source_info() = record.source_info();
  *request.mutable_timeout() = time::ToProto(options_.job_timeout);
  request.set_max_attempts(options_.max_attempts);
  CloudEvent event =
      broker_client::NewEvent(kRequested, options_.event_source, request.media(), request);
  // Deterministic: a republished request is the broker's duplicate.
  event.set_id(
      absl::StrCat(record.media_id(), ".", job.rendition().name(), ".g", job.generation()));
  broker_client::SetPartitionKey(&event, record.media_id());
  return event;
}

CloudEvent Coordinator::FailedEvent(const storage::MediaRecord& record) {
  ev::MediaFailed failed;
  failed.set_media(absl::StrCat("media/", record.media_id()));
  failed.set_owner(record.owner());
  failed.set_error(record.error());
  failed.set_reason(record.reason());
  failed.set_generation(record.generation());
  if (record.has_source_info()) *failed.mutable_source_info() = record.source_info();
  for (const auto& job : record.jobs()) {
    if (job.state() == tv::FAILED) {
      failed.set_job(job.name());
      break;
    }
  }
  CloudEvent event =
      broker_client::NewEvent(kMediaFailed, options_.event_source, failed.media(), failed);
  event.set_id(absl::StrCat(record.media_id(), ".failed.g", record.generation(), ".",
                            absl::ToUnixMillis(absl::Now())));
  broker_client::SetPartitionKey(&event, record.media_id());
  return event;
}

void Coordinator::FailMedia(storage::MediaRecord& record, const tv::Job& job,
                            std::vector<CloudEvent>& outbox) {
  if (record.state() != tv::TRANSCODING) return;
  record.set_state(tv::PLAN_FAILED);
  record.set_error(absl::StrCat(job.rendition().name(), ": ", job.error()));
  record.set_reason(job.reason());
  outbox.push_back(FailedEvent(record));
  log::Info("coordinator.media_failed",
            {{"media", record.media_id()}, {"job", job.name()}, {"error", record.error()}});
}

absl::Status Coordinator::MaybeComplete(storage::MediaRecord& record,
                                        std::vector<CloudEvent>& outbox) {
  if (record.state() != tv::TRANSCODING && record.state() != tv::PLAN_FAILED) {
    return absl::OkStatus();
  }
  std::vector<ev::TranscodeJobCompleted> results;
  for (const auto& job : record.jobs()) {
    if (job.state() != tv::SUCCEEDED) return absl::OkStatus();
    results.push_back(job.result());
  }
  const std::string key = absl::StrCat(record.owner(), "/", record.media_id(), "/hls/master.m3u8");
  auto master = objects_.PutBytes(options_.renditions_bucket, key, "application/vnd.apple.mpegurl",
                                  MasterPlaylist(results));
  if (!master.ok()) {
    log::Warning("coordinator.master_write_failed",
                 {{"media", record.media_id()}, {"status", master.status()}});
    return master.status();
  }
  record.set_state(tv::COMPLETED);
  record.clear_error();
  record.set_reason(ev::FAILURE_REASON_UNSPECIFIED);
  *record.mutable_master_playlist() = *master;
  ev::MediaReady ready;
  ready.set_media(absl::StrCat("media/", record.media_id()));
  ready.set_owner(record.owner());
  *ready.mutable_source_info() = record.source_info();
  for (auto& r : results) {
    if (r.rendition().kind() == ev::POSTER) *ready.mutable_poster() = r.output();
    *ready.add_renditions() = std::move(r);
  }
  *ready.mutable_master_playlist() = *master;
  ready.set_generation(record.generation());
  CloudEvent event = broker_client::NewEvent(kReady, options_.event_source, ready.media(), ready);
  std::string generations;
  for (const auto& job : record.jobs()) absl::StrAppend(&generations, ".", job.generation());
  event.set_id(absl::StrCat(record.media_id(), ".ready.g", record.generation(), generations));
  broker_client::SetPartitionKey(&event, record.media_id());
  outbox.push_back(std::move(event));
  log::Info("coordinator.media_ready", {{"media", record.media_id()}, {"master", key}});
  return absl::OkStatus();
}

template <typename Report, typename Apply>
absl::Status Coordinator::OnJobReport(const std::string& cause, const CloudEvent& event,
                                      Apply apply) {
  Report report;
  if (auto s = broker_client::UnpackPayload(event, &report); !s.ok()) {
    return Drop(s.message(), event);
  }
  auto [media_id, job_id] = JobIdsOf(report.job());
  if (media_id.empty()) return Drop("job: not \"media/{m}/jobs/{j}\"", event);
  absl::MutexLock lock(&LockFor(media_id));
  auto seen = store_.HasCause(cause);
  if (!seen.ok()) return seen.status();
  if (*seen) return absl::OkStatus();
  auto record = store_.GetMedia(media_id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) return Drop("unknown media", event);
  tv::Job* job = FindJob(**record, report.job());
  if (job == nullptr) return Drop("unknown job", event);
  return apply(report, **record, job);
}

absl::Status Coordinator::OnProgressed(const std::string& cause, const CloudEvent& event) {
  return OnJobReport<ev::TranscodeJobProgressed>(
      cause, event,
      [&](const ev::TranscodeJobProgressed& p, storage::MediaRecord& record,
          tv::Job* job) -> absl::Status {
        if (p.generation() != job->generation() || IsFinal(job->state())) return absl::OkStatus();
        job->set_state(tv::RUNNING);
        job->set_progress(std::clamp(p.progress(), 0.0, 1.0));
        job->set_worker(p.worker());
        job->set_attempts(std::max(job->attempts(), p.attempt()));
        if (!job->has_start_time()) *job->mutable_start_time() = time::ToProto(absl::Now());
        Touch(record, job, cause);
        JobStore::Write write;
        write.cause = cause;
        write.media = std::move(record);
        return CommitAndPublish(std::move(write));
      });
}

absl::Status Coordinator::OnCompleted(const std::string& cause, const CloudEvent& event) {
  return OnJobReport<ev::TranscodeJobCompleted>(
      cause, event,
      [&](const ev::TranscodeJobCompleted& c, storage::MediaRecord& record,
          tv::Job* job) -> absl::Status {
        if (c.generation() != job->generation() || IsFinal(job->state())) {
          log::Info("coordinator.completion_ignored", {{"job", c.job()},
                                                       {"worker", c.worker()},
                                                       {"state", tv::JobState_Name(job->state())},
                                                       {"generation", c.generation()},
                                                       {"current_generation", job->generation()}});
          return absl::OkStatus();
        }
        job->set_state(tv::SUCCEEDED);
        job->set_progress(1.0);
        job->set_worker(c.worker());
        job->set_attempts(std::max(job->attempts(), c.attempt()));
        job->clear_error();
        job->set_reason(ev::FAILURE_REASON_UNSPECIFIED);
        *job->mutable_result() = c;
        *job->mutable_elapsed() = c.elapsed();
        *job->mutable_end_time() = time::ToProto(absl::Now());
        if (!job->has_start_time()) *job->mutable_start_time() = job->end_time();
        Touch(record, job, cause);
        JobStore::Write write;
        write.cause = cause;
        if (auto s = MaybeComplete(record, write.outbox_add); !s.ok()) return s;
        write.media = std::move(record);
        return CommitAndPublish(std::move(write), {tv::SUCCEEDED});
      });
}

absl::Status Coordinator::OnFailed(const std::string& cause, const CloudEvent& event) {
  return OnJobReport<ev::TranscodeJobFailed>(
      cause, event,
      [&](const ev::TranscodeJobFailed& f, storage::MediaRecord& record,
          tv::Job* job) -> absl::Status {
        if (f.generation() != job->generation() || IsFinal(job->state())) return absl::OkStatus();
        job->set_attempts(std::max(job->attempts(), f.attempt()));
        job->set_error(f.error());
        job->set_reason(f.reason());
        job->set_worker(f.worker());
        JobStore::Write write;
        write.cause = cause;
        std::vector<tv::JobState> finished;
        if (f.permanent() || f.last_attempt()) {
          finished.push_back(tv::FAILED);
          job->set_state(tv::FAILED);
          *job->mutable_end_time() = time::ToProto(absl::Now());
          if (!f.permanent()) {
            job->set_reason(ev::ATTEMPTS_EXHAUSTED);
            job->set_error(absl::StrCat("failed ", f.attempt(), " times; last: ", f.error()));
          }
          FailMedia(record, *job, write.outbox_add);
        } else {
          // The broker redelivers it.
          job->set_state(tv::QUEUED);
          job->set_progress(0);
        }
        Touch(record, job, cause);
        write.media = std::move(record);
        return CommitAndPublish(std::move(write), finished);
      });
}

absl::Status Coordinator::OnDeleted(const std::string& cause, const CloudEvent& event) {
  ev::MediaDeleted d;
  if (auto s = broker_client::UnpackPayload(event, &d); !s.ok()) return Drop(s.message(), event);
  const std::string media_id = MediaIdOf(d.media());
  if (media_id.empty()) return Drop("media: not \"media/{id}\"", event);
  absl::MutexLock lock(&LockFor(media_id));
  auto seen = store_.HasCause(cause);
  if (!seen.ok()) return seen.status();
  if (*seen) return absl::OkStatus();
  auto record = store_.GetMedia(media_id);
  if (!record.ok()) return record.status();
  storage::MediaRecord r;
  if (record->has_value()) {
    r = std::move(**record);
  } else {
    // Tombstone: an upload event arriving later is not planned.
    r.set_media_id(media_id);
    r.set_owner(d.owner());
    *r.mutable_create_time() = time::ToProto(absl::Now());
  }
  int cancelled = 0;
  for (auto& job : *r.mutable_jobs()) {
    if (IsFinal(job.state())) continue;
    job.set_state(tv::CANCELLED);
    job.set_reason(ev::CANCELLED_BY_DELETE);
    job.set_error("media deleted");
    *job.mutable_end_time() = time::ToProto(absl::Now());
    ++cancelled;
  }
  r.set_state(tv::PLAN_CANCELLED);
  r.set_reason(ev::CANCELLED_BY_DELETE);
  r.set_error("media deleted");
  Touch(r, nullptr, cause);
  log::Info("coordinator.media_deleted", {{"media", media_id}, {"cancelled_jobs", cancelled}});
  JobStore::Write write;
  write.cause = cause;
  write.media = std::move(r);
  return CommitAndPublish(std::move(write), std::vector<tv::JobState>(cancelled, tv::CANCELLED));
}

absl::Status Coordinator::OnDeadLetter(const CloudEvent& event, int attempts,
                                       absl::string_view last_error) {
  ev::TranscodeJobRequested request;
  if (auto s = broker_client::UnpackPayload(event, &request); !s.ok()) {
    return Drop(s.message(), event);
  }
  auto [media_id, job_id] = JobIdsOf(request.job());
  if (media_id.empty()) return Drop("job: not \"media/{m}/jobs/{j}\"", event);
  const std::string cause = absl::StrCat("dead-letter ", event.source(), " ", event.id());
  absl::MutexLock lock(&LockFor(media_id));
  auto seen = store_.HasCause(cause);
  if (!seen.ok()) return seen.status();
  if (*seen) return absl::OkStatus();
  auto record = store_.GetMedia(media_id);
  if (!record.ok()) return record.status();
  if (!record->has_value()) return Drop("unknown media", event);
  tv::Job* job = FindJob(**record, request.job());
  if (job == nullptr) return Drop("unknown job", event);
  if (request.generation() != job->generation() || IsFinal(job->state())) return absl::OkStatus();
  job->set_state(tv::FAILED);
  job->set_attempts(std::max(job->attempts(), attempts));
  job->set_reason(ev::ATTEMPTS_EXHAUSTED);
  job->set_error(absl::StrCat("dead-lettered after ", attempts, " attempts; last: ", last_error));
  *job->mutable_end_time() = time::ToProto(absl::Now());
  JobStore::Write write;
  write.cause = cause;
  FailMedia(**record, *job, write.outbox_add);
  Touch(**record, job, cause);
  write.media = std::move(**record);
  return CommitAndPublish(std::move(write), {tv::FAILED});
}

// --------------------------------------------------------------- API

absl::StatusOr<storage::MediaRecord> Coordinator::GetMedia(absl::string_view media_id) {
  auto record = store_.GetMedia(media_id);
  if (!record.ok()) return record.status();
  if (!record->has_value() || (*record)->state() == tv::PLAN_STATE_UNSPECIFIED) {
    return absl::NotFoundError(absl::StrCat("media/", media_id, ": no transcode plan"));
  }
  return std::move(**record);
}

absl::StatusOr<tv::Job> Coordinator::GetJob(absl::string_view media_id, absl::string_view job_id) {
  auto record = GetMedia(media_id);
  if (!record.ok()) return record.status();
  tv::Job* job = FindJob(*record, JobName(media_id, job_id));
  if (job == nullptr) {
    return absl::NotFoundError(absl::StrCat(JobName(media_id, job_id), ": no such job"));
  }
  return *job;
}

absl::StatusOr<tv::Job> Coordinator::RetryJob(absl::string_view media_id,
                                              absl::string_view job_id) {
  absl::MutexLock lock(&LockFor(media_id));
  auto record = GetMedia(media_id);
  if (!record.ok()) return record.status();
  if (record->reason() == ev::CANCELLED_BY_DELETE) {
    return absl::FailedPreconditionError(
        absl::StrCat("media/", media_id, ": deleted; its jobs cannot be retried"));
  }
  const std::string name = JobName(media_id, job_id);
  tv::Job* job = FindJob(*record, name);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat(name, ": no such job"));
  if (job->state() != tv::FAILED && job->state() != tv::CANCELLED) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": state is ", tv::JobState_Name(job->state()),
                     "; only FAILED or CANCELLED jobs can be retried"));
  }
  job->set_generation(job->generation() + 1);
  job->set_state(tv::PENDING);
  job->set_attempts(0);
  job->set_progress(0);
  job->clear_error();
  job->set_reason(ev::FAILURE_REASON_UNSPECIFIED);
  job->clear_start_time();
  job->clear_end_time();
  job->clear_result();
  if (record->state() == tv::PLAN_FAILED || record->state() == tv::PLAN_CANCELLED) {
    // Back to transcoding unless another job is still failed.
    bool other_failed = false;
    for (const auto& j : record->jobs()) other_failed |= (j.state() == tv::FAILED);
    if (!other_failed) {
      record->set_state(tv::TRANSCODING);
      record->clear_error();
      record->set_reason(ev::FAILURE_REASON_UNSPECIFIED);
    }
  }
  const std::string cause = absl::StrCat("api retry ", name, " g", job->generation());
  Touch(*record, job, cause);
  tv::Job result = *job;
  JobStore::Write write;
  write.cause = cause;
  write.outbox_add.push_back(RequestEvent(*record, *job));
  write.media = std::move(*record);
  if (auto s = CommitAndPublish(std::move(write)); !s.ok()) return s;
  return result;
}

absl::StatusOr<storage::MediaRecord> Coordinator::RetryMedia(absl::string_view media_id) {
  auto before = GetMedia(media_id);
  if (!before.ok()) return before.status();
  if (before->reason() == ev::CANCELLED_BY_DELETE) {
    return absl::FailedPreconditionError(
        absl::StrCat("media/", media_id, ": deleted; it cannot be re-transcoded"));
  }
  if (before->state() == tv::TRANSCODING) {
    return absl::FailedPreconditionError(absl::StrCat(
        "media/", media_id, ": still TRANSCODING; cancel it first or retry single jobs"));
  }
  auto info = prober_.Probe(before->source());
  absl::MutexLock lock(&LockFor(media_id));
  auto record = GetMedia(media_id);
  if (!record.ok()) return record.status();
  if (record->state() == tv::TRANSCODING || record->reason() == ev::CANCELLED_BY_DELETE) {
    return absl::FailedPreconditionError(
        absl::StrCat("media/", media_id, ": changed while retrying; try again"));
  }
  int64_t job_generation = 0;
  for (const auto& job : record->jobs())
    job_generation = std::max(job_generation, job.generation());
  record->set_generation(record->generation() + 1);
  record->clear_master_playlist();
  JobStore::Write write;
  write.cause = absl::StrCat("api retry media/", media_id, " g", record->generation());
  if (!info.ok()) {
    if (!IsPermanent(info.status())) return info.status();
    record->set_state(tv::PLAN_FAILED);
    record->set_error(std::string(info.status().message()));
    record->set_reason(FailureReasonOf(info.status()));
    record->clear_jobs();
    write.outbox_add.push_back(FailedEvent(*record));
  } else {
    *record->mutable_source_info() = *info;
    record->set_state(tv::TRANSCODING);
    record->clear_error();
    record->set_reason(ev::FAILURE_REASON_UNSPECIFIED);
    if (auto s = PlanJobs(*record, job_generation + 1, write.outbox_add); !s.ok()) return s;
  }
  Touch(*record, nullptr, write.cause);
  storage::MediaRecord result = *record;
  write.media = std::move(*record);
  if (auto s = CommitAndPublish(std::move(write)); !s.ok()) return s;
  return result;
}

absl::StatusOr<storage::MediaRecord> Coordinator::Cancel(absl::string_view media_id) {
  absl::MutexLock lock(&LockFor(media_id));
  auto record = GetMedia(media_id);
  if (!record.ok()) return record.status();
  int cancelled = 0;
  for (auto& job : *record->mutable_jobs()) {
    if (IsFinal(job.state())) continue;
    job.set_state(tv::CANCELLED);
    job.set_error("cancelled by request");
    *job.mutable_end_time() = time::ToProto(absl::Now());
    ++cancelled;
  }
  if (cancelled == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("media/", media_id, ": state is ", tv::PlanState_Name(record->state()),
                     " with no outstanding job; nothing to cancel"));
  }
  record->set_state(tv::PLAN_CANCELLED);
  record->set_error("cancelled by request");
  JobStore::Write write;
  write.cause = absl::StrCat("api cancel media/", media_id, " ", absl::ToUnixNanos(absl::Now()));
  Touch(*record, nullptr, write.cause);
  storage::MediaRecord result = *record;
  write.media = std::move(*record);
  if (auto s =
          CommitAndPublish(std::move(write), std::vector<tv::JobState>(cancelled, tv::CANCELLED));
      !s.ok()) {
    return s;
  }
  return result;
}

absl::StatusOr<int64_t> Coordinator::Watch(absl::string_view media_id, absl::string_view job_id,
                                           JobWatcher watcher) {
  // Under the media's lock, so no transition slips between the first call
  // and the registration.
  absl::MutexLock media_lock(&LockFor(media_id));
  auto job = GetJob(media_id, job_id);
  if (!job.ok()) return job.status();
  watcher(*job);
  absl::MutexLock lock(&watch_mu_);
  const int64_t handle = next_watch_++;
  watchers_[handle] = {job->name(), std::move(watcher)};
  return handle;
}

void Coordinator::Unwatch(int64_t handle) {
  absl::MutexLock lock(&watch_mu_);
  watchers_.erase(handle);
}

void Coordinator::NotifyWatchers(const storage::MediaRecord& record) {
  absl::MutexLock lock(&watch_mu_);
  if (watchers_.empty()) return;
  for (const auto& job : record.jobs()) {
    for (auto& [handle, entry] : watchers_) {
      if (entry.job_name == job.name()) entry.watcher(job);
    }
  }
}

// ------------------------------------------------------ commit/publish

absl::Status Coordinator::CommitAndPublish(JobStore::Write write,
                                           std::vector<tv::JobState> finished) {
  if (auto s = store_.Commit(write); !s.ok()) return s;
  if (options_.probe != nullptr) {
    for (tv::JobState state : finished) options_.probe->JobFinished(tv::JobState_Name(state));
    for (const CloudEvent& e : write.outbox_add) {
      if (e.type() == kReady) options_.probe->MediaFinished("ready");
      if (e.type() == kMediaFailed) options_.probe->MediaFinished("failed");
    }
  }
  NotifyWatchers(write.media);
  PublishOutbox(std::move(write.outbox_add));
  return absl::OkStatus();
}

void Coordinator::PublishOutbox(std::vector<CloudEvent> events) {
  for (CloudEvent& event : events) {
    CloudEvent copy = event;
    sink_.Publish(std::move(event), [this, copy = std::move(copy)](absl::Status s) mutable {
      if (!s.ok()) {
        // Stays in the outbox; published again at the next start.
        log::Warning("coordinator.publish_failed", {{"id", copy.id()}, {"status", s}});
        return;
      }
      absl::MutexLock lock(&settle_mu_);
      published_.push_back(std::move(copy));
    });
  }
}

void Coordinator::SettleLoop() {
  while (true) {
    CloudEvent event;
    {
      absl::MutexLock lock(&settle_mu_);
      settle_mu_.Await(absl::Condition(
          +[](Coordinator* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->settle_mu_) {
            return c->stopping_ || !c->published_.empty();
          },
          this));
      if (published_.empty()) return;
      event = std::move(published_.front());
      published_.pop_front();
    }
    OnPublished(event);
  }
}

void Coordinator::OnPublished(const CloudEvent& event) {
  if (event.type() != kRequested) {
    if (auto s = store_.RemoveOutbox({event.id()}); !s.ok()) {
      log::Warning("coordinator.outbox_remove_failed", {{"id", event.id()}, {"status", s}});
    }
    return;
  }
  ev::TranscodeJobRequested request;
  if (!broker_client::UnpackPayload(event, &request).ok()) return;
  auto [media_id, job_id] = JobIdsOf(request.job());
  absl::MutexLock lock(&LockFor(media_id));
  auto record = store_.GetMedia(media_id);
  JobStore::Write write;
  write.outbox_remove.push_back(event.id());
  tv::Job* job = record.ok() && record->has_value() ? FindJob(**record, request.job()) : nullptr;
  if (job == nullptr || job->state() != tv::PENDING || job->generation() != request.generation()) {
    (void)store_.RemoveOutbox(write.outbox_remove);
    return;
  }
  job->set_state(tv::QUEUED);
  Touch(**record, job, (*record)->last_cause());
  write.media = std::move(**record);
  if (auto s = store_.Commit(write); !s.ok()) {
    log::Warning("coordinator.queued_commit_failed", {{"job", request.job()}, {"status", s}});
    return;
  }
  NotifyWatchers(write.media);
}

}  // namespace pettube::transcode
