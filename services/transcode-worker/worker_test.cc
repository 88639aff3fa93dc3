// Worker with a fake broker side (events, coordinator watch) and the real
// JobRunner / ffmpeg on a generated 2 s 320x240 clip.
#include "services/transcode-worker/worker.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "libs/time/proto_time.h"
#include "services/transcode-coordinator/ladder.h"

namespace pettube::transcode {
namespace {

namespace ev = ::pettube::events::v1;
namespace tv = ::pettube::transcode::v1;
namespace fs = std::filesystem;
using ::io::cloudevents::v1::CloudEvent;

class NullObjects : public ObjectWriter {
 public:
  absl::StatusOr<ev::ObjectRef> PutBytes(absl::string_view bucket, absl::string_view key,
                                         absl::string_view type, absl::string_view bytes) override {
    ev::ObjectRef ref;
    ref.set_store(std::string(bucket));
    ref.set_key(std::string(key));
    ref.set_size_bytes(static_cast<int64_t>(bytes.size()));
    return ref;
  }
  absl::StatusOr<ev::ObjectRef> PutFile(absl::string_view bucket, absl::string_view key,
                                        absl::string_view type, const std::string& path) override {
    return PutBytes(bucket, key, type, std::to_string(fs::file_size(path)));
  }
};

class FakeEvents : public WorkerEvents {
 public:
  absl::Status PublishAndWait(CloudEvent event, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
    return absl::OkStatus();
  }
  void PublishAsync(CloudEvent event) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  std::vector<CloudEvent> OfType(absl::string_view type) {
    absl::MutexLock lock(&mu_);
    std::vector<CloudEvent> out;
    for (auto& e : events_) {
      if (e.type() == type) out.push_back(e);
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  std::vector<CloudEvent> events_;
};

// Answers each watch with `first`, then whatever Push sends.
class FakeWatcher : public JobWatcher {
 public:
  class Watch : public JobWatch {
   public:
    Watch(FakeWatcher* w, std::function<void(const tv::Job&)> f) : w_(w) {
      absl::MutexLock lock(&w_->mu_);
      w_->on_job_ = std::move(f);
    }
    ~Watch() override {
      absl::MutexLock lock(&w_->mu_);
      w_->on_job_ = nullptr;
    }
    FakeWatcher* w_;
  };
  std::unique_ptr<JobWatch> Watch(const std::string&, std::function<void(const tv::Job&)> on_job,
                                  std::function<void()>) override {
    auto watch = std::make_unique<class Watch>(this, on_job);
    on_job(first_);
    return watch;
  }
  void Push(const tv::Job& job) {
    absl::MutexLock lock(&mu_);
    if (on_job_) on_job_(job);
  }
  tv::Job first_;
  absl::Mutex mu_;
  std::function<void(const tv::Job&)> on_job_;
};

class WorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/clips");
    fs::create_directories(dir);
    clip_ = new std::string(dir + "/clip.mp4");
    Subprocess::Options o;
    o.argv = {"/usr/bin/ffmpeg",
              "-nostdin",
              "-v",
              "error",
              "-y",
              "-f",
              "lavfi",
              "-i",
              "testsrc2=size=320x240:rate=30",
              "-f",
              "lavfi",
              "-i",
              "sine=frequency=440",
              "-t",
              "2",
              "-c:v",
              "libx264",
              "-preset",
              "ultrafast",
              "-pix_fmt",
              "yuv420p",
              "-c:a",
              "aac",
              "-shortest",
              *clip_};
    auto p = Subprocess::Start(o);
    ASSERT_TRUE(p.ok());
    ASSERT_EQ((*p)->Wait().exit_code, 0);
  }

  void SetUp() override {
    JobRunner::Options o;
    o.scratch_dir = absl::StrCat(getenv("TEST_TMPDIR"), "/scratch");
    o.worker = "w1";
    o.progress_interval = absl::ZeroDuration();
    o.source_url = [](const ev::ObjectRef& ref) { return ref.key(); };
    fs::create_directories(o.scratch_dir);
    runner_ = std::make_unique<JobRunner>(o, objects_, nullptr);
    watcher_.first_.set_state(tv::QUEUED);
    watcher_.first_.set_generation(1);
  }

  pettube::broker::v1::Delivery Delivery(const std::string& source, int attempt = 1) {
    ev::SourceInfo info;
    info.set_width(320);
    info.set_height(240);
    info.set_display_width(320);
    info.set_display_height(240);
    info.set_has_audio(true);
    *info.mutable_duration() = time::ToProto(absl::Seconds(2));
    ev::TranscodeJobRequested job;
    *job.mutable_rendition() = (*PlanLadder(info, DefaultPresets()))[0];
    job.set_job("media/m1/jobs/240p");
    job.set_media("media/m1");
    job.mutable_source()->set_key(source);
    job.set_output_key("alice/m1/240p.mp4");
    job.set_hls_playlist_key("alice/m1/hls/240p.m3u8");
    job.set_hls_media_key("alice/m1/hls/240p.mp4");
    job.set_generation(1);
    job.set_max_attempts(3);
    *job.mutable_source_info() = info;
    pettube::broker::v1::Delivery d;
    *d.mutable_event() = broker_client::NewEvent(
        "pettube.transcode.job.requested", "//pettube/transcode-coordinator", "media/m1", job);
    d.set_attempt(attempt);
    return d;
  }

  Worker::Options Opts() {
    Worker::Options o;
    o.name = "w1";
    o.probe = &probe_;
    return o;
  }

  static std::string* clip_;
  metrics::Registry registry_;
  WorkerProbe probe_{registry_};
  NullObjects objects_;
  FakeEvents events_;
  FakeWatcher watcher_;
  std::unique_ptr<JobRunner> runner_;
};
std::string* WorkerTest::clip_ = nullptr;

TEST_F(WorkerTest, CompletedJobIsPublishedThenAcked) {
  Worker worker(Opts(), *runner_, events_, &watcher_);
  EXPECT_TRUE(worker.Handle(Delivery(*clip_)).ok());
  auto completed = events_.OfType("pettube.transcode.job.completed");
  ASSERT_EQ(completed.size(), 1u);
  ev::TranscodeJobCompleted c;
  ASSERT_TRUE(broker_client::UnpackPayload(completed[0], &c).ok());
  EXPECT_EQ(c.job(), "media/m1/jobs/240p");
  EXPECT_EQ(c.worker(), "w1");
  EXPECT_EQ(broker_client::GetAttribute(completed[0], "partitionkey").value_or(""), "m1");
  EXPECT_FALSE(events_.OfType("pettube.transcode.job.progressed").empty());
  EXPECT_NE(
      registry_.Serialize().find("pettube_transcode_worker_jobs_total{result=\"completed\"} 1"),
      std::string::npos)
      << registry_.Serialize();
}

TEST_F(WorkerTest, JobAlreadyDoneIsSkippedWithoutFfmpeg) {
  watcher_.first_.set_state(tv::SUCCEEDED);
  watcher_.first_.set_worker("w0");
  Worker worker(Opts(), *runner_, events_, &watcher_);
  EXPECT_TRUE(worker.Handle(Delivery("/does/not/exist.mp4")).ok());
  EXPECT_TRUE(events_.OfType("pettube.transcode.job.completed").empty());
  EXPECT_TRUE(events_.OfType("pettube.transcode.job.failed").empty());
}

TEST_F(WorkerTest, CancelledWhileRunningIsAckedWithoutOutput) {
  // The coordinator cancels the job as soon as ffmpeg reports progress.
  class CancellingEvents : public FakeEvents {
   public:
    explicit CancellingEvents(FakeWatcher* w) : w_(w) {}
    void PublishAsync(CloudEvent event) override {
      tv::Job cancelled;
      cancelled.set_state(tv::CANCELLED);
      cancelled.set_generation(1);
      w_->Push(cancelled);
      FakeEvents::PublishAsync(std::move(event));
    }
    FakeWatcher* w_;
  } events(&watcher_);
  Worker cancelling(Opts(), *runner_, events, &watcher_);
  EXPECT_TRUE(cancelling.Handle(Delivery(*clip_)).ok());
  EXPECT_TRUE(events.OfType("pettube.transcode.job.completed").empty());
  EXPECT_TRUE(events.OfType("pettube.transcode.job.failed").empty());
}

TEST_F(WorkerTest, FailureIsReportedAndNackedAndMarkedLastOnTheLastAttempt) {
  Worker worker(Opts(), *runner_, events_, &watcher_);
  absl::Status first = worker.Handle(Delivery("/does/not/exist.mp4", 1));
  EXPECT_FALSE(first.ok());
  absl::Status last = worker.Handle(Delivery("/does/not/exist.mp4", 3));
  EXPECT_FALSE(last.ok());
  auto failed = events_.OfType("pettube.transcode.job.failed");
  ASSERT_EQ(failed.size(), 2u);
  ev::TranscodeJobFailed f1, f3;
  ASSERT_TRUE(broker_client::UnpackPayload(failed[0], &f1).ok());
  ASSERT_TRUE(broker_client::UnpackPayload(failed[1], &f3).ok());
  EXPECT_FALSE(f1.last_attempt());
  EXPECT_TRUE(f3.last_attempt());
  EXPECT_EQ(f3.attempt(), 3);
  // ffmpeg's own words.
  EXPECT_NE(f3.error().find("No such file or directory"), std::string::npos) << f3.error();
  EXPECT_EQ(f3.reason(), ev::TRANSCODE_FAILED);
}

TEST_F(WorkerTest, IdleTimerFiresOnceWithoutJobs) {
  Worker::Options o = Opts();
  o.idle_exit = absl::Milliseconds(100);
  Worker worker(o, *runner_, events_, &watcher_);
  absl::Notification idle;
  worker.StartIdleTimer([&] { idle.Notify(); });
  EXPECT_TRUE(idle.WaitForNotificationWithTimeout(absl::Seconds(10)));
}

TEST_F(WorkerTest, DrainingWorkerHandsNewJobsBack) {
  Worker worker(Opts(), *runner_, events_, &watcher_);
  worker.BeginDrain();
  EXPECT_EQ(worker.Handle(Delivery(*clip_)).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pettube::transcode
