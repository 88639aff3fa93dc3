#include "services/transcode-coordinator/transcode_service.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/server/unary.h"
#include "libs/status/grpc_status.h"

namespace pettube::transcode {
namespace {

namespace tv = ::pettube::transcode::v1;

bool ValidSegment(absl::string_view s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 128) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

// "media/{id}" (optionally followed by `suffix`) -> id.
absl::StatusOr<std::string> ParseMedia(absl::string_view field, absl::string_view name,
                                       absl::string_view suffix = "") {
  absl::string_view rest = name;
  if (absl::ConsumePrefix(&rest, "media/") && absl::ConsumeSuffix(&rest, suffix) &&
      ValidSegment(rest)) {
    return std::string(rest);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be \"media/{media_id}", suffix, "\", got \"", name, "\""));
}

absl::StatusOr<std::pair<std::string, std::string>> ParseJob(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  if (parts.size() == 4 && parts[0] == "media" && parts[2] == "jobs" && ValidSegment(parts[1]) &&
      ValidSegment(parts[3])) {
    return std::make_pair(std::string(parts[1]), std::string(parts[3]));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("name: must be \"media/{media_id}/jobs/{job_id}\", got \"", name, "\""));
}

bool IsFinal(tv::JobState s) { return s == tv::SUCCEEDED || s == tv::FAILED || s == tv::CANCELLED; }

}  // namespace

// Streams a job's changes: every watcher call queues the job; one write in
// flight at a time; finishes after writing a final state.
class TranscodeService::WatchReactor : public grpc::ServerWriteReactor<tv::Job> {
 public:
  WatchReactor(Coordinator& coordinator, const std::string& media_id, const std::string& job_id)
      : coordinator_(coordinator) {
    auto handle = coordinator_.Watch(media_id, job_id, [this](const tv::Job& job) { Push(job); });
    absl::MutexLock lock(&mu_);
    if (!handle.ok()) {
      FinishLocked(status::ToGrpcStatus(handle.status()));
      return;
    }
    handle_ = *handle;
    constructing_ = false;
    NextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    NextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    int64_t handle;
    {
      absl::MutexLock lock(&mu_);
      handle = handle_;
    }
    // After Unwatch returns no watcher call is running.
    if (handle != 0) coordinator_.Unwatch(handle);
    delete this;
  }

 private:
  void Push(const tv::Job& job) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    // Only the latest state matters: coalesce.
    pending_ = job;
    has_pending_ = true;
    NextLocked();
  }

  void NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // No write before the constructor is done: OnDone must find handle_.
    if (writing_ || finished_ || constructing_) return;
    if (!has_pending_) {
      if (final_written_) FinishLocked(grpc::Status::OK);
      return;
    }
    current_ = pending_;
    has_pending_ = false;
    writing_ = true;
    final_written_ = IsFinal(current_.state());
    StartWrite(&current_);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  Coordinator& coordinator_;
  absl::Mutex mu_;
  int64_t handle_ ABSL_GUARDED_BY(mu_) = 0;
  tv::Job pending_ ABSL_GUARDED_BY(mu_);
  tv::Job current_ ABSL_GUARDED_BY(mu_);
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool final_written_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool constructing_ ABSL_GUARDED_BY(mu_) = true;
};

TranscodeService::TranscodeService(Coordinator& coordinator,
                                   const auth::Authenticator* authenticator)
    : coordinator_(coordinator), authenticator_(authenticator) {}

absl::Status TranscodeService::Authorize(const grpc::CallbackServerContext& context,
                                         absl::string_view media_id, Access access) {
  if (authenticator_ == nullptr) return absl::OkStatus();
  auto caller = authenticator_->Authenticate(context);
  if (!caller.ok()) return caller.status();
  if (caller->HasScope("transcode.admin")) return absl::OkStatus();
  if (access == Access::kRead && caller->HasScope("transcode.read")) return absl::OkStatus();
  // Transcode workers (they write renditions) watch the jobs they hold.
  if (access == Access::kRead && caller->workload && caller->HasScope("objects.write")) {
    return absl::OkStatus();
  }
  const char* scope = access == Access::kRead ? "media.read" : "media.write";
  if (caller->workload || !caller->HasScope(scope)) {
    return absl::PermissionDeniedError(
        absl::StrCat("token: lacks ", scope, access == Access::kRead ? ", transcode.read" : "",
                     " or transcode.admin"));
  }
  auto record = coordinator_.GetMedia(media_id);
  if (!record.ok()) return record.status();
  if (record->owner() != caller->identity) {
    // Someone else's media does not exist for this caller.
    return absl::NotFoundError(absl::StrCat("media/", media_id, ": no transcode plan"));
  }
  return absl::OkStatus();
}

tv::TranscodePlan TranscodeService::ToPlan(const storage::MediaRecord& record) {
  tv::TranscodePlan plan;
  plan.set_name(absl::StrCat("media/", record.media_id(), "/plan"));
  plan.set_media(absl::StrCat("media/", record.media_id()));
  plan.set_state(record.state());
  *plan.mutable_source_info() = record.source_info();
  *plan.mutable_jobs() = record.jobs();
  plan.set_owner(record.owner());
  plan.set_generation(record.generation());
  plan.set_error(record.error());
  plan.set_reason(record.reason());
  if (record.has_master_playlist()) *plan.mutable_master_playlist() = record.master_playlist();
  *plan.mutable_source() = record.source();
  *plan.mutable_create_time() = record.create_time();
  *plan.mutable_update_time() = record.update_time();
  return plan;
}

grpc::ServerUnaryReactor* TranscodeService::GetTranscodePlan(
    grpc::CallbackServerContext* context, const tv::GetTranscodePlanRequest* request,
    tv::TranscodePlan* response) {
  auto media_id = ParseMedia("name", request->name(), "/plan");
  if (!media_id.ok()) return server::FinishUnary(context, media_id.status());
  if (auto s = Authorize(*context, *media_id, Access::kRead); !s.ok()) {
    return server::FinishUnary(context, s);
  }
  auto record = coordinator_.GetMedia(*media_id);
  if (!record.ok()) return server::FinishUnary(context, record.status());
  return server::FinishUnary(context, absl::StatusOr<tv::TranscodePlan>(ToPlan(*record)), response);
}

grpc::ServerUnaryReactor* TranscodeService::ListJobs(grpc::CallbackServerContext* context,
                                                     const tv::ListJobsRequest* request,
                                                     tv::ListJobsResponse* response) {
  auto media_id = ParseMedia("parent", request->parent());
  if (!media_id.ok()) return server::FinishUnary(context, media_id.status());
  if (request->page_size() < 0 || request->page_size() > 500) {
    return server::FinishUnary(
        context, absl::InvalidArgumentError(
                     absl::StrCat("page_size: must be 0 to 500, got ", request->page_size())));
  }
  int offset = 0;
  if (!request->page_token().empty() &&
      (!absl::SimpleAtoi(request->page_token(), &offset) || offset < 0)) {
    return server::FinishUnary(
        context, absl::InvalidArgumentError(absl::StrCat(
                     "page_token: not from a previous response: \"", request->page_token(), "\"")));
  }
  if (auto s = Authorize(*context, *media_id, Access::kRead); !s.ok()) {
    return server::FinishUnary(context, s);
  }
  auto record = coordinator_.GetMedia(*media_id);
  if (!record.ok()) return server::FinishUnary(context, record.status());
  const int size = request->page_size() == 0 ? 50 : request->page_size();
  for (int i = offset; i < record->jobs_size() && i < offset + size; ++i) {
    *response->add_jobs() = record->jobs(i);
  }
  if (offset + size < record->jobs_size())
    response->set_next_page_token(absl::StrCat(offset + size));
  return server::FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* TranscodeService::GetJob(grpc::CallbackServerContext* context,
                                                   const tv::GetJobRequest* request,
                                                   tv::Job* response) {
  auto ids = ParseJob(request->name());
  if (!ids.ok()) return server::FinishUnary(context, ids.status());
  if (auto s = Authorize(*context, ids->first, Access::kRead); !s.ok()) {
    return server::FinishUnary(context, s);
  }
  return server::FinishUnary(context, coordinator_.GetJob(ids->first, ids->second), response);
}

grpc::ServerUnaryReactor* TranscodeService::RetryJob(grpc::CallbackServerContext* context,
                                                     const tv::RetryJobRequest* request,
                                                     tv::Job* response) {
  auto ids = ParseJob(request->name());
  if (!ids.ok()) return server::FinishUnary(context, ids.status());
  if (auto s = Authorize(*context, ids->first, Access::kWrite); !s.ok()) {
    return server::FinishUnary(context, s);
  }
  return server::FinishUnary(context, coordinator_.RetryJob(ids->first, ids->second), response);
}

grpc::ServerUnaryReactor* TranscodeService::RetryMedia(grpc::CallbackServerContext* context,
                                                       const tv::RetryMediaRequest* request,
                                                       tv::TranscodePlan* response) {
  auto media_id = ParseMedia("name", request->name());
  if (!media_id.ok()) return server::FinishUnary(context, media_id.status());
  if (auto s = Authorize(*context, *media_id, Access::kWrite); !s.ok()) {
    return server::FinishUnary(context, s);
  }
  auto record = coordinator_.RetryMedia(*media_id);
  if (!record.ok()) return server::FinishUnary(context, record.status());
  return server::FinishUnary(context, absl::StatusOr<tv::TranscodePlan>(ToPlan(*record)), response);
}

grpc::ServerUnaryReactor* TranscodeService::CancelTranscode(
    grpc::CallbackServerContext* context, const tv::CancelTranscodeRequest* request,
    tv::TranscodePlan* response) {
  auto media_id = ParseMedia("name", request->name());
  if (!media_id.ok()) return server::FinishUnary(context, media_id.status());
  if (auto s = Authorize(*context, *media_id, Access::kWrite); !s.ok()) {
    return server::FinishUnary(context, s);
  }
  auto record = coordinator_.Cancel(*media_id);
  if (!record.ok()) return server::FinishUnary(context, record.status());
  return server::FinishUnary(context, absl::StatusOr<tv::TranscodePlan>(ToPlan(*record)), response);
}

grpc::ServerWriteReactor<tv::Job>* TranscodeService::WatchJob(grpc::CallbackServerContext* context,
                                                              const tv::WatchJobRequest* request) {
  auto fail = [](const absl::Status& s) {
    class Failed : public grpc::ServerWriteReactor<tv::Job> {
     public:
      explicit Failed(const absl::Status& s) { Finish(status::ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Failed(s);
  };
  auto ids = ParseJob(request->name());
  if (!ids.ok()) return fail(ids.status());
  if (auto s = Authorize(*context, ids->first, Access::kRead); !s.ok()) return fail(s);
  return new WatchReactor(coordinator_, ids->first, ids->second);
}

}  // namespace pettube::transcode
