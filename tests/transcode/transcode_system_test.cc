// Transcoding over real processes: auth-token-exchange, broker, upload,
// transcode-coordinator and transcode-worker(s) (and the supervisor), with
// real ffmpeg on tiny generated clips (2 s at 320x240; 20 s at 640x480
// where a worker must be caught mid-job). A person uploads through the
// upload API; the test watches the broker for the media's events and reads
// the outputs back over HTTP.

#include <signal.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/stats_watcher.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "services/transcode-worker/object_writer.h"
#include "tests/transcode/transcode_stack.h"

namespace pettube {
namespace {

namespace ev = ::pettube::events::v1;
namespace tv = ::pettube::transcode::v1;
using ::io::cloudevents::v1::CloudEvent;
using ::pettube::transcode::testing::MakeClip;
using ::pettube::transcode::testing::TranscodeStack;

std::string JobOf(const CloudEvent& progressed) {
  ev::TranscodeJobProgressed p;
  EXPECT_TRUE(broker_client::UnpackPayload(progressed, &p).ok());
  return p.job();
}

class TranscodeSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = TranscodeStack::Start();
    observer_ = &stack_->observer();
    clips_ = stack_->clips_dir();
  }
  void TearDown() override { stack_.reset(); }

  void StartCoordinator(std::vector<std::string> extra = {}) {
    stack_->StartCoordinator(std::move(extra));
    coordinator_stub_ = &stack_->coordinator_stub();
  }
  transcode::testing::Running& StartWorker(const std::string& name = "") {
    return stack_->StartWorker(name);
  }
  std::string Upload(const std::string& bytes) { return stack_->Upload(bytes); }
  std::unique_ptr<grpc::ClientContext> AsTester(int seconds = 10) {
    return stack_->AsTester(seconds);
  }
  absl::StatusOr<pettube::testing::HttpResponse> GetObject(const std::string& bucket,
                                                           const std::string& key) {
    return stack_->GetObject(bucket, key);
  }
  // A 20 s 640x480 source: a 480p, a 360p and a poster job, long enough
  // to catch a worker in the middle of ffmpeg.
  std::string LongerClip() { return MakeClip(clips_ + "/long.mp4", 20, "640x480"); }

  std::unique_ptr<TranscodeStack> stack_;
  transcode::testing::Observer* observer_ = nullptr;
  tv::TranscodeCoordinator::Stub* coordinator_stub_ = nullptr;
  std::string clips_;
};

TEST_F(TranscodeSystemTest, UploadBecomesReadyWithPlayableRenditions) {
  StartCoordinator();
  StartWorker();
  const std::string media = Upload(MakeClip(clips_ + "/clip.mp4", 2));
  auto event = observer_->WaitFor(media, absl::Seconds(120));
  ASSERT_TRUE(event.has_value()) << "no ready/failed event for " << media;
  ASSERT_EQ(event->type(), "pettube.media.ready");
  ev::MediaReady ready;
  ASSERT_TRUE(broker_client::UnpackPayload(*event, &ready).ok());
  ASSERT_EQ(ready.renditions_size(), 2);
  EXPECT_EQ(ready.source_info().width(), 320);
  EXPECT_TRUE(ready.source_info().has_audio());
  EXPECT_FALSE(ready.poster().key().empty());

  // The master playlist names the variant, whose playlist names its file.
  auto master = GetObject("renditions", ready.master_playlist().key());
  ASSERT_TRUE(master.ok()) << master.status();
  EXPECT_EQ(master->status, 200);
  EXPECT_NE(master->body.find("240p.m3u8"), std::string::npos) << master->body;
  EXPECT_NE(master->body.find("CODECS=\"avc1.64"), std::string::npos) << master->body;
  for (const auto& r : ready.renditions()) {
    if (r.rendition().kind() != ev::VIDEO) continue;
    auto variant = GetObject("renditions", r.hls_playlist().key());
    ASSERT_TRUE(variant.ok());
    EXPECT_NE(variant->body.find("#EXT-X-MAP:URI=\"240p.mp4\""), std::string::npos)
        << variant->body;
    auto mp4 = GetObject("renditions", r.output().key());
    ASSERT_TRUE(mp4.ok());
    EXPECT_EQ(mp4->status, 200);
    EXPECT_EQ(transcode::Sha256Of(mp4->body), r.output().sha256());
    EXPECT_LT(mp4->body.find("moov"), mp4->body.find("mdat"));  // +faststart
  }

  tv::GetTranscodePlanRequest req;
  req.set_name(media + "/plan");
  tv::TranscodePlan plan;
  grpc::Status s = coordinator_stub_->GetTranscodePlan(AsTester().get(), req, &plan);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(plan.state(), tv::COMPLETED);
  for (const auto& job : plan.jobs()) {
    EXPECT_EQ(job.state(), tv::SUCCEEDED) << job.name();
    EXPECT_EQ(job.attempts(), 1) << job.name();
  }
  EXPECT_EQ(observer_->Count(media, "pettube.media.ready"), 1);
}

TEST_F(TranscodeSystemTest, AudioOnlyUploadFailsWithAReadableReason) {
  StartCoordinator();
  const std::string media = Upload(MakeClip(clips_ + "/audio.mp4", 2, "320x240", /*video=*/false));
  auto event = observer_->WaitFor(media, absl::Seconds(60));
  ASSERT_TRUE(event.has_value());
  ASSERT_EQ(event->type(), "pettube.media.failed");
  ev::MediaFailed failed;
  ASSERT_TRUE(broker_client::UnpackPayload(*event, &failed).ok());
  EXPECT_EQ(failed.reason(), ev::NO_VIDEO_STREAM);
  EXPECT_EQ(failed.error(), "source: has no video stream (audio only)");
}

TEST_F(TranscodeSystemTest, TruncatedUploadFailsAsCorrupt) {
  StartCoordinator();
  const std::string clip = MakeClip(clips_ + "/clip.mp4", 2);
  const std::string media = Upload(clip.substr(0, clip.size() / 3));
  auto event = observer_->WaitFor(media, absl::Seconds(60));
  ASSERT_TRUE(event.has_value());
  ASSERT_EQ(event->type(), "pettube.media.failed");
  ev::MediaFailed failed;
  ASSERT_TRUE(broker_client::UnpackPayload(*event, &failed).ok());
  EXPECT_EQ(failed.reason(), ev::SOURCE_CORRUPT) << failed.error();
}

TEST_F(TranscodeSystemTest, CoordinatorKilledMidLadderResumesAndIsReadyOnce) {
  // No worker yet: the plan is made and queued, nothing runs.
  StartCoordinator();
  const std::string media = Upload(MakeClip(clips_ + "/clip.mp4", 2));
  // The plan is committed before its job requests are published.
  ASSERT_TRUE(
      observer_->WaitForCount(media, "pettube.transcode.job.requested", 2, absl::Seconds(60)));
  stack_->coordinator().process->Signal(SIGKILL);
  ASSERT_TRUE(stack_->coordinator().process->WaitForExit(absl::Seconds(10)).ok());
  StartCoordinator();  // same data directory
  StartWorker();
  auto event = observer_->WaitFor(media, absl::Seconds(120));
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->type(), "pettube.media.ready");
  tv::GetTranscodePlanRequest req;
  req.set_name(media + "/plan");
  tv::TranscodePlan plan;
  ASSERT_TRUE(coordinator_stub_->GetTranscodePlan(AsTester().get(), req, &plan).ok());
  EXPECT_EQ(plan.state(), tv::COMPLETED);
  EXPECT_EQ(plan.jobs_size(), 2);
  EXPECT_EQ(observer_->Count(media, "pettube.media.ready"), 1);
}

TEST_F(TranscodeSystemTest, WorkerKilledMidJobIsRedeliveredAndCompletesOnce) {
  StartCoordinator();
  transcode::testing::Running& first = StartWorker("doomed");
  const std::string media = Upload(LongerClip());
  auto progressed =
      observer_->WaitForType(media, "pettube.transcode.job.progressed", absl::Seconds(60));
  ASSERT_TRUE(progressed.has_value());
  const std::string job = JobOf(*progressed);
  first.process->Signal(SIGKILL);  // ffmpeg dies with it
  ASSERT_TRUE(first.process->WaitForExit(absl::Seconds(10)).ok());
  StartWorker("survivor");
  auto event = observer_->WaitFor(media, absl::Seconds(120));
  ASSERT_TRUE(event.has_value());
  ASSERT_EQ(event->type(), "pettube.media.ready");
  // Each job completed exactly once; the interrupted one on its second try.
  std::map<std::string, int> completions;
  for (const auto& e : observer_->All(media, "pettube.transcode.job.completed")) {
    ev::TranscodeJobCompleted c;
    ASSERT_TRUE(broker_client::UnpackPayload(e, &c).ok());
    ++completions[c.job()];
    if (c.job() == job) {
      EXPECT_EQ(c.worker(), "survivor");
      EXPECT_EQ(c.attempt(), 2);
    }
  }
  EXPECT_EQ(completions.size(), 3u);
  for (const auto& [name, n] : completions) EXPECT_EQ(n, 1) << name;
  EXPECT_EQ(observer_->Count(media, "pettube.media.ready"), 1);
}

TEST_F(TranscodeSystemTest, MediaDeletedWhileTranscodingKillsFfmpegAndLeavesNoOutput) {
  StartCoordinator();
  StartWorker();
  const std::string media = Upload(LongerClip());
  auto progressed =
      observer_->WaitForType(media, "pettube.transcode.job.progressed", absl::Seconds(60));
  ASSERT_TRUE(progressed.has_value());
  const std::string job = JobOf(*progressed);
  // The catalog's deletion event, as the media-catalog would publish it.
  tv::GetTranscodePlanRequest plan_req;
  plan_req.set_name(media + "/plan");
  tv::TranscodePlan plan;
  ASSERT_TRUE(coordinator_stub_->GetTranscodePlan(AsTester().get(), plan_req, &plan).ok());
  ev::MediaDeleted deleted;
  deleted.set_media(media);
  deleted.set_owner(plan.owner());
  CloudEvent e =
      broker_client::NewEvent("pettube.media.deleted", "//pettube/media-catalog", media, deleted);
  broker_client::SetPartitionKey(&e, media.substr(6));
  {
    auto stub = broker::v1::Broker::NewStub(stack_->broker_channel());
    broker::v1::PublishRequest req;
    *req.add_events() = e;
    broker::v1::PublishResponse resp;
    grpc::Status s = stub->Publish(AsTester().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(resp.results(0).status().code(), 0) << resp.results(0).status().message();
  }
  // The running job ends CANCELLED (pushed to us as to the worker).
  {
    tv::WatchJobRequest req;
    req.set_name(job);
    auto ctx = AsTester(60);
    auto reader = coordinator_stub_->WatchJob(ctx.get(), req);
    tv::Job state;
    while (reader->Read(&state) && state.state() != tv::CANCELLED) {
    }
    EXPECT_EQ(state.state(), tv::CANCELLED);
  }
  // The worker learns it and stops: its next event is about no job of
  // this media; the work queue empties with no completion of that job.
  auto stats_stub = broker::v1::Broker::NewStub(stack_->broker_channel());
  {
    auto ctx = AsTester(60);
    broker::v1::WatchSubscriptionStatsRequest req;
    req.set_name("subscriptions/transcode-jobs");
    auto stream = stats_stub->WatchSubscriptionStats(ctx.get(), req);
    broker::v1::SubscriptionStats stats;
    bool drained = false;
    while (stream->Read(&stats)) {
      if (stats.backlog() == 0) {
        drained = true;
        ctx->TryCancel();
        break;
      }
    }
    EXPECT_TRUE(drained);
  }
  for (const auto& c : observer_->All(media, "pettube.transcode.job.completed")) {
    ev::TranscodeJobCompleted done;
    ASSERT_TRUE(broker_client::UnpackPayload(c, &done).ok());
    EXPECT_NE(done.job(), job);
  }
  const std::string key = job.substr(job.rfind('/') + 1);
  auto mp4 =
      GetObject("renditions", absl::StrCat(plan.owner(), "/", media.substr(6), "/", key, ".mp4"));
  ASSERT_TRUE(mp4.ok());
  EXPECT_EQ(mp4->status, 404);
  EXPECT_EQ(observer_->Count(media, "pettube.media.ready"), 0);
  ASSERT_TRUE(coordinator_stub_->GetTranscodePlan(AsTester().get(), plan_req, &plan).ok());
  EXPECT_EQ(plan.state(), tv::PLAN_CANCELLED);
}

// The work queue's stats every 10 ms, watched as the tester.
broker_client::StatsWatcher::Options JobQueueWatch(TranscodeStack& stack) {
  broker_client::StatsWatcher::Options options;
  options.subscription = "subscriptions/transcode-jobs";
  options.min_interval = absl::Milliseconds(10);
  options.configure_context = [t = stack.tester()](grpc::ClientContext& c) {
    (void)t->Attach(c);
  };
  return options;
}

// The work queue's stats as the broker pushes them.
class QueueStats {
 public:
  explicit QueueStats(TranscodeStack& stack)
      : watcher_(stack.broker_channel(), JobQueueWatch(stack)) {
    EXPECT_TRUE(watcher_
                    .Start([this](const broker_client::SubscriptionStats& s) {
                      absl::MutexLock lock(&mu_);
                      history_.push_back(s);
                    })
                    .ok());
  }
  // Waits until a pushed stats message satisfies `done`.
  bool WaitFor(const std::function<bool(const broker_client::SubscriptionStats&)>& done,
               absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    struct Args {
      QueueStats* q;
      const std::function<bool(const broker_client::SubscriptionStats&)>* done;
      size_t seen;
    } args{this, &done, 0};
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                      for (; a->seen < a->q->history_.size(); ++a->seen) {
                                        if ((*a->done)(a->q->history_[a->seen])) return true;
                                      }
                                      return false;
                                    },
                                    &args),
                                timeout);
  }

 private:
  absl::Mutex mu_;
  std::vector<broker_client::SubscriptionStats> history_ ABSL_GUARDED_BY(mu_);
  broker_client::StatsWatcher watcher_;
};

TEST_F(TranscodeSystemTest, SupervisorScalesWorkersFromZeroToZero) {
  StartCoordinator();
  stack_->StartSupervisor(/*max_workers=*/2, /*worker_idle_exit=*/absl::Seconds(1));
  QueueStats stats(*stack_);
  // An empty queue: no worker attached.
  ASSERT_TRUE(stats.WaitFor([](const auto& s) { return s.backlog() == 0 && s.consumers() == 0; },
                            absl::Seconds(30)));
  const std::string media = Upload(MakeClip(clips_ + "/clip.mp4", 2));
  // Workers start for the backlog (two jobs: 240p and the poster) ...
  ASSERT_TRUE(stats.WaitFor([](const auto& s) { return s.consumers() >= 1; }, absl::Seconds(30)));
  auto event = observer_->WaitFor(media, absl::Seconds(120));
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->type(), "pettube.media.ready");
  // ... and exit once idle: zero workers again.
  EXPECT_TRUE(stats.WaitFor([](const auto& s) { return s.backlog() == 0 && s.consumers() == 0; },
                            absl::Seconds(30)));
}

TEST_F(TranscodeSystemTest, WorkerStoppedPastItsLeaseLosesTheJobToAnother) {
  StartCoordinator({"--job_ack_deadline=2s"});
  transcode::testing::Running& late = StartWorker("late");
  const std::string media = Upload(LongerClip());
  auto progressed =
      observer_->WaitForType(media, "pettube.transcode.job.progressed", absl::Seconds(60));
  ASSERT_TRUE(progressed.has_value());
  const std::string job = JobOf(*progressed);
  late.process->Signal(SIGSTOP);  // no more lease extensions
  StartWorker("prompt");
  auto event = observer_->WaitFor(media, absl::Seconds(120));
  ASSERT_TRUE(event.has_value());
  ASSERT_EQ(event->type(), "pettube.media.ready");
  late.process->Signal(SIGCONT);
  // The late worker learns the job was completed by another and discards
  // its output; it drains and exits cleanly.
  late.process->Signal(SIGTERM);
  auto code = late.process->WaitForExit(absl::Seconds(60));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0);
  for (const auto& e : observer_->All(media, "pettube.transcode.job.completed")) {
    ev::TranscodeJobCompleted c;
    ASSERT_TRUE(broker_client::UnpackPayload(e, &c).ok());
    if (c.job() == job) {
      EXPECT_EQ(c.worker(), "prompt");
    }
  }
  tv::GetJobRequest req;
  req.set_name(job);
  tv::Job state;
  ASSERT_TRUE(coordinator_stub_->GetJob(AsTester().get(), req, &state).ok());
  EXPECT_EQ(state.state(), tv::SUCCEEDED);
  EXPECT_EQ(state.worker(), "prompt");
  EXPECT_EQ(observer_->Count(media, "pettube.media.ready"), 1);
}

TEST_F(TranscodeSystemTest, JobFailingEveryAttemptIsDeadLetteredAndFailsTheMedia) {
  StartCoordinator();  // --max_attempts=2
  // A worker whose ffmpeg refuses every encode (no such x264 preset).
  stack_->StartWorker("broken", {"--x264_preset=no-such-preset"});
  const std::string media = Upload(MakeClip(clips_ + "/clip.mp4", 2));
  auto event = observer_->WaitFor(media, absl::Seconds(120));
  ASSERT_TRUE(event.has_value());
  ASSERT_EQ(event->type(), "pettube.media.failed");
  ev::MediaFailed failed;
  ASSERT_TRUE(broker_client::UnpackPayload(*event, &failed).ok());
  EXPECT_EQ(failed.reason(), ev::ATTEMPTS_EXHAUSTED);
  EXPECT_EQ(failed.job(), media + "/jobs/240p");
  // ffmpeg's own words reach the person.
  EXPECT_NE(failed.error().find("failed 2 times"), std::string::npos) << failed.error();
  EXPECT_NE(failed.error().find("ffmpeg 240p: "), std::string::npos) << failed.error();
  // The broker holds the request in the work queue's dead letters.
  auto stub = broker::v1::Broker::NewStub(stack_->broker_channel());
  QueueStats stats(*stack_);
  EXPECT_TRUE(
      stats.WaitFor([](const auto& s) { return s.dead_letter_count() >= 1; }, absl::Seconds(30)));
  broker::v1::ListDeadLettersRequest req;
  req.set_subscription("subscriptions/transcode-jobs");
  broker::v1::ListDeadLettersResponse resp;
  ASSERT_TRUE(stub->ListDeadLetters(AsTester().get(), req, &resp).ok());
  ASSERT_GE(resp.dead_letters_size(), 1);
  EXPECT_EQ(resp.dead_letters(0).attempts(), 2);
  EXPECT_NE(resp.dead_letters(0).last_error().find("ffmpeg 240p"), std::string::npos)
      << resp.dead_letters(0).last_error();
}

TEST_F(TranscodeSystemTest, LastAttemptLostWithItsWorkerStillFailsTheMedia) {
  // One attempt, a 2 s lease: a worker that stops mid-job never reports.
  StartCoordinator({"--max_attempts=1", "--job_ack_deadline=2s"});
  transcode::testing::Running& stuck = StartWorker("stuck");
  const std::string media = Upload(LongerClip());
  auto progressed =
      observer_->WaitForType(media, "pettube.transcode.job.progressed", absl::Seconds(60));
  ASSERT_TRUE(progressed.has_value());
  const std::string job = JobOf(*progressed);
  stuck.process->Signal(SIGSTOP);
  // The lease runs out, the broker dead-letters the request, and the
  // coordinator (watching the queue's dead letters) fails the media.
  auto event = observer_->WaitFor(media, absl::Seconds(60));
  stuck.process->Signal(SIGKILL);
  ASSERT_TRUE(stuck.process->WaitForExit(absl::Seconds(10)).ok());
  ASSERT_TRUE(event.has_value());
  ASSERT_EQ(event->type(), "pettube.media.failed");
  ev::MediaFailed failed;
  ASSERT_TRUE(broker_client::UnpackPayload(*event, &failed).ok());
  EXPECT_EQ(failed.reason(), ev::ATTEMPTS_EXHAUSTED);
  EXPECT_EQ(failed.job(), job);
  EXPECT_NE(failed.error().find("dead-lettered after 1 attempts"), std::string::npos)
      << failed.error();
}

TEST_F(TranscodeSystemTest, PeopleSeeAndSteerOnlyTheirOwnPlans) {
  StartCoordinator();
  // Alice's upload fails (audio only): she may read and retry its plan.
  const std::string media = Upload(MakeClip(clips_ + "/audio.mp4", 2, "320x240", false));
  ASSERT_TRUE(observer_->WaitFor(media, absl::Seconds(60)).has_value());
  auto as = [](const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token);
    ctx->set_deadline(transcode::testing::In(10));
    return ctx;
  };
  const std::string alice = stack_->SignIn("alice");
  const std::string bob = stack_->SignIn("bob");
  tv::GetTranscodePlanRequest get;
  get.set_name(media + "/plan");
  tv::TranscodePlan plan;
  grpc::Status s = coordinator_stub_->GetTranscodePlan(as(alice).get(), get, &plan);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(plan.state(), tv::PLAN_FAILED);
  EXPECT_EQ(plan.reason(), ev::NO_VIDEO_STREAM);
  // Bob cannot tell it exists.
  s = coordinator_stub_->GetTranscodePlan(as(bob).get(), get, &plan);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  tv::RetryMediaRequest retry;
  retry.set_name(media);
  s = coordinator_stub_->RetryMedia(as(bob).get(), retry, &plan);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  // No token at all.
  grpc::ClientContext anonymous;
  anonymous.set_deadline(transcode::testing::In(10));
  s = coordinator_stub_->GetTranscodePlan(&anonymous, get, &plan);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  // Alice retries: re-probed, a new generation, failed again for the same reason.
  s = coordinator_stub_->RetryMedia(as(alice).get(), retry, &plan);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(plan.generation(), 2);
  EXPECT_EQ(plan.state(), tv::PLAN_FAILED);
  EXPECT_TRUE(observer_->WaitForCount(media, "pettube.media.failed", 2, absl::Seconds(30)));
  // A malformed name is refused, naming the field.
  get.set_name("media/../plan");
  s = coordinator_stub_->GetTranscodePlan(as(alice).get(), get, &plan);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("name: must be"), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace pettube
