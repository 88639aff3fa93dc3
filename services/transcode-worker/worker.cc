#include "services/transcode-worker/worker.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "libs/broker_client/event_builder.h"
#include "libs/log/log.h"
#include "libs/time/proto_time.h"
#include "services/transcode-coordinator/failure.h"

namespace pettube::transcode {
namespace {

namespace ev = ::pettube::events::v1;
namespace tv = ::pettube::transcode::v1;
using ::io::cloudevents::v1::CloudEvent;

class GrpcJobWatch : public JobWatch {
 public:
  GrpcJobWatch(v1::TranscodeCoordinator::Stub* stub, std::shared_ptr<auth::TokenSource> tokens,
               const std::string& job, std::function<void(const tv::Job&)> on_job,
               std::function<void()> on_end) {
    if (tokens != nullptr) (void)tokens->Attach(context_);
    thread_ =
        std::thread([this, stub, job, on_job = std::move(on_job), on_end = std::move(on_end)] {
          tv::WatchJobRequest request;
          request.set_name(job);
          auto reader = stub->WatchJob(&context_, request);
          tv::Job update;
          while (reader->Read(&update)) on_job(update);
          grpc::Status s = reader->Finish();
          if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
            log::Warning("worker.watch_ended", {{"job", job},
                                                {"code", static_cast<int>(s.error_code())},
                                                {"error", s.error_message()}});
          }
          on_end();
        });
  }
  ~GrpcJobWatch() override {
    context_.TryCancel();
    thread_.join();
  }

 private:
  grpc::ClientContext context_;
  std::thread thread_;
};

}  // namespace

GrpcJobWatcher::GrpcJobWatcher(std::shared_ptr<grpc::Channel> channel,
                               std::shared_ptr<auth::TokenSource> tokens)
    : stub_(v1::TranscodeCoordinator::NewStub(channel)), tokens_(std::move(tokens)) {}

std::unique_ptr<JobWatch> GrpcJobWatcher::Watch(const std::string& job_name,
                                                std::function<void(const tv::Job&)> on_job,
                                                std::function<void()> on_end) {
  return std::make_unique<GrpcJobWatch>(stub_.get(), tokens_, job_name, std::move(on_job),
                                        std::move(on_end));
}

Worker::Worker(Options options, JobRunner& runner, WorkerEvents& events, JobWatcher* watcher)
    : options_(std::move(options)), runner_(runner), events_(events), watcher_(watcher) {}

Worker::~Worker() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (idle_thread_.joinable()) idle_thread_.join();
  if (drain_thread_.joinable()) drain_thread_.join();
}

CloudEvent Worker::Event(absl::string_view type, absl::string_view media,
                         const google::protobuf::Message& payload, absl::string_view id) {
  CloudEvent event = broker_client::NewEvent(type, options_.event_source, media, payload);
  if (!id.empty()) event.set_id(std::string(id));
  absl::string_view media_id = media;
  absl::ConsumePrefix(&media_id, "media/");
  broker_client::SetPartitionKey(&event, media_id);
  return event;
}

absl::Status Worker::Handle(const pettube::broker::v1::Delivery& delivery) {
  ev::TranscodeJobRequested job;
  if (auto s = broker_client::UnpackPayload(delivery.event(), &job); !s.ok()) {
    log::Warning("worker.job_dropped", {{"id", delivery.event().id()}, {"why", s.message()}});
    return absl::OkStatus();
  }
  const int attempt = std::max(1, delivery.attempt());
  const absl::Time start = absl::Now();
  CancelToken cancel;
  {
    absl::MutexLock lock(&mu_);
    if (draining_) return absl::UnavailableError("worker draining: job handed back");
    ++busy_;
    ++jobs_started_;
    current_ = &cancel;
  }
  struct Done {
    Worker* w;
    ~Done() {
      absl::MutexLock lock(&w->mu_);
      --w->busy_;
      w->current_ = nullptr;
    }
  } done_guard{this};

  // Is it still wanted? The coordinator pushes the job's state now and on
  // every change while we work.
  absl::Notification first;
  absl::Mutex first_mu;
  std::string skip_reason;
  std::unique_ptr<JobWatch> watch;
  if (watcher_ != nullptr) {
    watch = watcher_->Watch(
        job.job(),
        [&](const tv::Job& state) {
          std::string why;
          if (state.generation() > job.generation()) {
            why = "superseded by a retry";
          } else if (state.state() == tv::CANCELLED && state.generation() == job.generation()) {
            why = "job cancelled";
          } else if (state.state() == tv::SUCCEEDED && state.generation() == job.generation()) {
            why = absl::StrCat("completed by ", state.worker());
          }
          if (!why.empty()) cancel.Cancel(why);
          absl::MutexLock lock(&first_mu);
          if (!first.HasBeenNotified()) {
            skip_reason = why;
            first.Notify();
          }
        },
        [&] {
          // No answer will come (coordinator away or refusing): work anyway.
          absl::MutexLock lock(&first_mu);
          if (!first.HasBeenNotified()) first.Notify();
        });
    first.WaitForNotificationWithTimeout(options_.watch_first_wait);
    absl::MutexLock lock(&first_mu);
    if (!skip_reason.empty()) {
      log::Info("worker.job_skipped", {{"job", job.job()}, {"why", skip_reason}});
      Count("skipped", start);
      return absl::OkStatus();
    }
  }
  log::Info("worker.job_started",
            {{"job", job.job()}, {"generation", job.generation()}, {"attempt", attempt}});
  auto progress = [&](const ProgressUpdate& u, double fraction) {
    ev::TranscodeJobProgressed p;
    p.set_job(job.job());
    p.set_media(job.media());
    p.set_progress(fraction);
    p.set_worker(options_.name);
    p.set_generation(job.generation());
    p.set_attempt(attempt);
    *p.mutable_out_time() = time::ToProto(u.out_time);
    p.set_speed(u.speed);
    events_.PublishAsync(Event("pettube.transcode.job.progressed", job.media(), p, ""));
  };
  absl::StatusOr<ev::TranscodeJobCompleted> result = runner_.Run(job, attempt, cancel, progress);
  if (result.ok()) {
    // Acked only once the completion is stored: a crash before that
    // redoes the job, never loses it.
    const std::string id =
        absl::StrCat(delivery.event().id(), ".completed.a", attempt, ".", options_.name);
    if (auto s = events_.PublishAndWait(
            Event("pettube.transcode.job.completed", job.media(), *result, id), absl::Seconds(30));
        !s.ok()) {
      Count("failed", start);
      return absl::UnavailableError(absl::StrCat("publish job.completed: ", s.message()));
    }
    log::Info("worker.job_completed",
              {{"job", job.job()},
               {"bytes", result->output().size_bytes()},
               {"seconds", absl::ToDoubleSeconds(time::FromProto(result->elapsed()))}});
    Count("completed", start);
    return absl::OkStatus();
  }
  const absl::Status& error = result.status();
  if (error.code() == absl::StatusCode::kCancelled) {
    bool draining;
    {
      absl::MutexLock lock(&mu_);
      draining = draining_;
    }
    log::Info("worker.job_cancelled", {{"job", job.job()}, {"why", cancel.reason()}});
    // Handed back when we stop; otherwise nobody wants it any more.
    Count(draining ? "handed_back" : "cancelled", start);
    if (draining) return absl::UnavailableError("worker draining: job handed back");
    return absl::OkStatus();
  }
  const bool permanent = IsPermanent(error);
  const bool last = permanent || (job.max_attempts() > 0 && attempt >= job.max_attempts());
  ev::TranscodeJobFailed failed;
  failed.set_job(job.job());
  failed.set_media(job.media());
  failed.set_error(std::string(error.message()));
  failed.set_permanent(permanent);
  failed.set_worker(options_.name);
  failed.set_generation(job.generation());
  failed.set_attempt(attempt);
  failed.set_reason(FailureReasonOf(error));
  failed.set_last_attempt(last);
  const std::string id =
      absl::StrCat(delivery.event().id(), ".failed.a", attempt, ".", options_.name);
  if (auto s = events_.PublishAndWait(
          Event("pettube.transcode.job.failed", job.media(), failed, id), absl::Seconds(30));
      !s.ok()) {
    log::Warning("worker.failed_event_lost", {{"job", job.job()}, {"status", s}});
  }
  log::Warning("worker.job_failed",
               {{"job", job.job()}, {"attempt", attempt}, {"last", last}, {"status", error}});
  Count("failed", start);
  // Permanent: no point in another delivery.
  if (permanent) return absl::OkStatus();
  return error;
}

void Worker::Count(absl::string_view result, absl::Time start) {
  if (options_.probe != nullptr) options_.probe->JobDone(result, absl::Now() - start);
}

void Worker::BeginDrain() {
  absl::MutexLock lock(&mu_);
  if (draining_) return;
  draining_ = true;
  drain_thread_ = std::thread([this] { DrainLoop(); });
}

void Worker::DrainLoop() {
  absl::MutexLock lock(&mu_);
  const bool idle = mu_.AwaitWithTimeout(absl::Condition(
                                             +[](Worker* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
                                               return w->busy_ == 0 || w->stopping_;
                                             },
                                             this),
                                         options_.drain_deadline);
  if (!idle && current_ != nullptr) {
    log::Info("worker.drain_deadline", {{"action", "handing the job back"}});
    current_->Cancel("worker draining");
  }
}

void Worker::StartIdleTimer(std::function<void()> on_idle) {
  if (options_.idle_exit <= absl::ZeroDuration()) return;
  idle_thread_ = std::thread([this, on_idle = std::move(on_idle)] { IdleLoop(on_idle); });
}

void Worker::IdleLoop(std::function<void()> on_idle) {
  absl::MutexLock lock(&mu_);
  while (!stopping_ && !draining_) {
    // Wait while busy, then for idle_exit without a new job.
    mu_.Await(absl::Condition(
        +[](Worker* w)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->busy_ == 0 || w->stopping_; },
        this));
    if (stopping_) return;
    struct Seen {
      Worker* w;
      uint64_t started;
    } seen{this, jobs_started_};
    const bool woke = mu_.AwaitWithTimeout(absl::Condition(
                                               +[](Seen* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                                 return s->w->stopping_ || s->w->draining_ ||
                                                        s->w->jobs_started_ != s->started;
                                               },
                                               &seen),
                                           options_.idle_exit);
    if (!woke) {
      log::Info("worker.idle_exit", {{"idle_seconds", absl::ToDoubleSeconds(options_.idle_exit)}});
      mu_.Unlock();
      on_idle();
      mu_.Lock();
      return;
    }
  }
}

}  // namespace pettube::transcode
