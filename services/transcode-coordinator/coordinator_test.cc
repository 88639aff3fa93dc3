#include "services/transcode-coordinator/coordinator.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "libs/time/proto_time.h"
#include "services/transcode-coordinator/failure.h"
#include "services/transcode-coordinator/rocksdb_job_store.h"

namespace pettube::transcode {
namespace {

namespace ev = ::pettube::events::v1;
namespace tv = ::pettube::transcode::v1;
using ::io::cloudevents::v1::CloudEvent;

class FakeProber : public SourceProber {
 public:
  absl::StatusOr<ev::SourceInfo> Probe(const ev::ObjectRef& source) override {
    absl::MutexLock lock(&mu_);
    ++probes_;
    auto it = results_.find(source.key());
    if (it == results_.end()) return absl::NotFoundError("no fake result");
    return it->second;
  }
  void Set(const std::string& key, absl::StatusOr<ev::SourceInfo> r) {
    absl::MutexLock lock(&mu_);
    results_.insert_or_assign(key, std::move(r));
  }
  int probes() {
    absl::MutexLock lock(&mu_);
    return probes_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, absl::StatusOr<ev::SourceInfo>> results_;
  int probes_ = 0;
};

class FakeObjects : public ObjectWriter {
 public:
  absl::StatusOr<ev::ObjectRef> PutBytes(absl::string_view bucket, absl::string_view key,
                                         absl::string_view content_type,
                                         absl::string_view bytes) override {
    absl::MutexLock lock(&mu_);
    if (!fail_.ok()) return fail_;
    objects_[absl::StrCat(bucket, "/", key)] = std::string(bytes);
    ev::ObjectRef ref;
    ref.set_store(std::string(bucket));
    ref.set_key(std::string(key));
    ref.set_size_bytes(static_cast<int64_t>(bytes.size()));
    ref.set_sha256(Sha256Of(bytes));
    ref.set_content_type(std::string(content_type));
    return ref;
  }
  absl::StatusOr<ev::ObjectRef> PutFile(absl::string_view, absl::string_view, absl::string_view,
                                        const std::string&) override {
    return absl::UnimplementedError("not used");
  }
  void Fail(absl::Status s) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(s);
  }
  std::map<std::string, std::string> objects() {
    absl::MutexLock lock(&mu_);
    return objects_;
  }

 private:
  absl::Mutex mu_;
  absl::Status fail_;
  std::map<std::string, std::string> objects_;
};

// Records published events; acks them at once unless held.
class FakeSink : public EventSink {
 public:
  void Publish(CloudEvent event, std::function<void(absl::Status)> done) override {
    std::function<void(absl::Status)> run;
    {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
      if (hold_) {
        held_.push_back(std::move(done));
        return;
      }
    }
    done(absl::OkStatus());
  }
  void Hold() {
    absl::MutexLock lock(&mu_);
    hold_ = true;
  }
  std::vector<CloudEvent> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  std::vector<CloudEvent> OfType(absl::string_view type) {
    std::vector<CloudEvent> out;
    for (auto& e : events()) {
      if (e.type() == type) out.push_back(e);
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  bool hold_ = false;
  std::vector<CloudEvent> events_;
  std::vector<std::function<void(absl::Status)>> held_;
};

ev::SourceInfo Info(int w, int h) {
  ev::SourceInfo s;
  s.set_width(w);
  s.set_height(h);
  s.set_display_width(w);
  s.set_display_height(h);
  s.set_has_audio(true);
  s.set_video_codec("h264");
  s.set_audio_codec("aac");
  *s.mutable_duration() = time::ToProto(absl::Seconds(2));
  return s;
}

CloudEvent Uploaded(const std::string& media_id, int64_t size = 1000) {
  ev::MediaUploaded u;
  u.set_media("media/" + media_id);
  u.set_owner("alice");
  u.set_title("cat");
  u.mutable_source()->set_store("originals");
  u.mutable_source()->set_key("alice/" + media_id + "/source");
  u.mutable_source()->set_size_bytes(size);
  CloudEvent e =
      broker_client::NewEvent("pettube.media.uploaded", "//pettube/upload", u.media(), u);
  return e;
}

CloudEvent Completed(const std::string& media_id, const std::string& rendition,
                     int64_t generation = 1, const std::string& worker = "w1") {
  ev::TranscodeJobCompleted c;
  c.set_job(Coordinator::JobName(media_id, rendition));
  c.set_media("media/" + media_id);
  c.mutable_rendition()->set_name(rendition);
  c.mutable_rendition()->set_kind(rendition == "poster" ? ev::POSTER : ev::VIDEO);
  c.mutable_rendition()->set_width(320);
  c.mutable_rendition()->set_height(240);
  c.mutable_output()->set_store("renditions");
  c.mutable_output()->set_key(absl::StrCat("alice/", media_id, "/", rendition));
  c.set_bitrate_bps(300000);
  c.set_codecs("avc1.64000d,mp4a.40.2");
  c.set_generation(generation);
  c.set_attempt(1);
  c.set_worker(worker);
  return broker_client::NewEvent("pettube.transcode.job.completed", "//pettube/transcode-worker",
                                 c.media(), c);
}

CloudEvent Failed(const std::string& media_id, const std::string& rendition, bool permanent,
                  bool last_attempt, int attempt = 1) {
  ev::TranscodeJobFailed f;
  f.set_job(Coordinator::JobName(media_id, rendition));
  f.set_media("media/" + media_id);
  f.set_error("Error while decoding stream #0:0: Invalid data found when processing input");
  f.set_permanent(permanent);
  f.set_last_attempt(last_attempt);
  f.set_attempt(attempt);
  f.set_generation(1);
  f.set_reason(ev::TRANSCODE_FAILED);
  f.set_worker("w1");
  return broker_client::NewEvent("pettube.transcode.job.failed", "//pettube/transcode-worker",
                                 f.media(), f);
}

CloudEvent Deleted(const std::string& media_id) {
  ev::MediaDeleted d;
  d.set_media("media/" + media_id);
  d.set_owner("alice");
  return broker_client::NewEvent("pettube.media.deleted", "//pettube/media-catalog", d.media(), d);
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(getenv("TEST_TMPDIR"), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    Open();
    prober_.Set("alice/m1/source", Info(320, 240));
    prober_.Set("alice/hd/source", Info(1920, 1080));
  }
  void Open() {
    coordinator_.reset();
    store_.reset();
    auto store = RocksDbJobStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    Coordinator::Options options;
    options.probe = &probe_;
    coordinator_ = std::make_unique<Coordinator>(options, *store_, prober_, objects_, sink_);
    ASSERT_TRUE(coordinator_->Start().ok());
  }
  // Waits until the settle thread has applied the broker's acks.
  void WaitQueued(const std::string& media_id) {
    absl::Notification done;
    std::vector<int64_t> handles;
    auto record = coordinator_->GetMedia(media_id);
    ASSERT_TRUE(record.ok());
    for (const auto& job : record->jobs()) {
      absl::Notification* n = new absl::Notification();
      auto h = coordinator_->Watch(media_id, job.name().substr(job.name().rfind('/') + 1),
                                   [n](const tv::Job& j) {
                                     if (j.state() != tv::PENDING && !n->HasBeenNotified())
                                       n->Notify();
                                   });
      ASSERT_TRUE(h.ok());
      ASSERT_TRUE(n->WaitForNotificationWithTimeout(absl::Seconds(5))) << job.name();
      coordinator_->Unwatch(*h);
      delete n;
    }
  }

  std::string dir_;
  metrics::Registry registry_;
  CoordinatorProbe probe_{registry_};
  FakeProber prober_;
  FakeObjects objects_;
  FakeSink sink_;
  std::unique_ptr<RocksDbJobStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorTest, UploadPlansOneJobPerRenditionAndRequestsEach) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("hd")).ok());
  auto requests = sink_.OfType("pettube.transcode.job.requested");
  ASSERT_EQ(requests.size(), 5u);
  ev::TranscodeJobRequested r;
  ASSERT_TRUE(broker_client::UnpackPayload(requests[1], &r).ok());
  EXPECT_EQ(r.job(), "media/hd/jobs/720p");
  EXPECT_EQ(r.output_key(), "alice/hd/720p.mp4");
  EXPECT_EQ(r.hls_playlist_key(), "alice/hd/hls/720p.m3u8");
  EXPECT_EQ(r.hls_media_key(), "alice/hd/hls/720p.mp4");
  EXPECT_EQ(r.generation(), 1);
  EXPECT_EQ(r.source().key(), "alice/hd/source");
  EXPECT_EQ(requests[1].id(), "hd.720p.g1");
  EXPECT_EQ(broker_client::GetAttribute(requests[1], "partitionkey").value_or(""), "hd");
  ASSERT_TRUE(broker_client::UnpackPayload(requests[4], &r).ok());
  EXPECT_EQ(r.output_key(), "alice/hd/poster.jpg");
  EXPECT_EQ(r.hls_playlist_key(), "");
  WaitQueued("hd");
  auto record = coordinator_->GetMedia("hd");
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state(), tv::TRANSCODING);
  for (const auto& job : record->jobs()) EXPECT_EQ(job.state(), tv::QUEUED) << job.name();
}

TEST_F(CoordinatorTest, RedeliveredUploadChangesNothing) {
  CloudEvent e = Uploaded("m1");
  ASSERT_TRUE(coordinator_->Handle(e).ok());
  ASSERT_TRUE(coordinator_->Handle(e).ok());
  EXPECT_EQ(sink_.OfType("pettube.transcode.job.requested").size(), 2u);
  EXPECT_EQ(prober_.probes(), 1);
}

TEST_F(CoordinatorTest, AllJobsSucceededWritesMasterAndPublishesReadyOnce) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  ASSERT_TRUE(coordinator_->Handle(Completed("m1", "240p")).ok());
  EXPECT_TRUE(sink_.OfType("pettube.media.ready").empty());
  CloudEvent poster = Completed("m1", "poster");
  ASSERT_TRUE(coordinator_->Handle(poster).ok());
  ASSERT_TRUE(coordinator_->Handle(poster).ok());  // redelivered
  auto ready = sink_.OfType("pettube.media.ready");
  ASSERT_EQ(ready.size(), 1u);
  ev::MediaReady payload;
  ASSERT_TRUE(broker_client::UnpackPayload(ready[0], &payload).ok());
  EXPECT_EQ(payload.renditions_size(), 2);
  EXPECT_EQ(payload.master_playlist().key(), "alice/m1/hls/master.m3u8");
  EXPECT_EQ(payload.poster().key(), "alice/m1/poster");
  const std::string master = objects_.objects()["renditions/alice/m1/hls/master.m3u8"];
  EXPECT_NE(master.find("240p.m3u8"), std::string::npos) << master;
  EXPECT_EQ(master.find("poster"), std::string::npos) << master;
  auto record = coordinator_->GetMedia("m1");
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state(), tv::COMPLETED);
  const std::string metrics = registry_.Serialize();
  EXPECT_NE(metrics.find("pettube_transcode_media_total{outcome=\"ready\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("pettube_transcode_jobs_finished_total{state=\"SUCCEEDED\"} 2"),
            std::string::npos)
      << metrics;
}

TEST_F(CoordinatorTest, LateCompletionOfAFinishedJobIsIgnored) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  ASSERT_TRUE(coordinator_->Handle(Completed("m1", "240p", 1, "fast")).ok());
  ASSERT_TRUE(coordinator_->Handle(Completed("m1", "240p", 1, "stopped")).ok());
  auto job = coordinator_->GetJob("m1", "240p");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->worker(), "fast");
  EXPECT_EQ(job->state(), tv::SUCCEEDED);
}

TEST_F(CoordinatorTest, MasterWriteFailureIsRetriedOnRedelivery) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  ASSERT_TRUE(coordinator_->Handle(Completed("m1", "240p")).ok());
  objects_.Fail(absl::UnavailableError("upload down"));
  CloudEvent poster = Completed("m1", "poster");
  EXPECT_EQ(coordinator_->Handle(poster).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(coordinator_->GetJob("m1", "poster")->state() == tv::SUCCEEDED, false);
  objects_.Fail(absl::OkStatus());
  ASSERT_TRUE(coordinator_->Handle(poster).ok());
  EXPECT_EQ(sink_.OfType("pettube.media.ready").size(), 1u);
}

TEST_F(CoordinatorTest, RetryableFailureLeavesTheJobQueued) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  ASSERT_TRUE(coordinator_->Handle(Failed("m1", "240p", false, false)).ok());
  auto job = coordinator_->GetJob("m1", "240p");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), tv::QUEUED);
  EXPECT_EQ(job->attempts(), 1);
  EXPECT_NE(job->error().find("Invalid data"), std::string::npos);
  EXPECT_TRUE(sink_.OfType("pettube.media.failed").empty());
}

TEST_F(CoordinatorTest, LastAttemptFailsTheMediaWithTheReason) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  ASSERT_TRUE(coordinator_->Handle(Failed("m1", "240p", false, true, 3)).ok());
  auto failed = sink_.OfType("pettube.media.failed");
  ASSERT_EQ(failed.size(), 1u);
  ev::MediaFailed payload;
  ASSERT_TRUE(broker_client::UnpackPayload(failed[0], &payload).ok());
  EXPECT_EQ(payload.reason(), ev::ATTEMPTS_EXHAUSTED);
  EXPECT_EQ(payload.job(), "media/m1/jobs/240p");
  EXPECT_NE(payload.error().find("failed 3 times"), std::string::npos) << payload.error();
  EXPECT_NE(payload.error().find("Invalid data"), std::string::npos) << payload.error();
  EXPECT_EQ(coordinator_->GetMedia("m1")->state(), tv::PLAN_FAILED);
}

TEST_F(CoordinatorTest, RetryJobRequeuesANewGenerationThatCanComplete) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  ASSERT_TRUE(coordinator_->Handle(Completed("m1", "poster")).ok());
  EXPECT_EQ(coordinator_->RetryJob("m1", "240p").status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(coordinator_->Handle(Failed("m1", "240p", true, false)).ok());
  auto retried = coordinator_->RetryJob("m1", "240p");
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->generation(), 2);
  EXPECT_EQ(coordinator_->GetMedia("m1")->state(), tv::TRANSCODING);
  auto requests = sink_.OfType("pettube.transcode.job.requested");
  EXPECT_EQ(requests.back().id(), "m1.240p.g2");
  // A late event of the old generation changes nothing.
  ASSERT_TRUE(coordinator_->Handle(Completed("m1", "240p", 1)).ok());
  EXPECT_NE(coordinator_->GetJob("m1", "240p")->state(), tv::SUCCEEDED);
  ASSERT_TRUE(coordinator_->Handle(Completed("m1", "240p", 2)).ok());
  EXPECT_EQ(coordinator_->GetMedia("m1")->state(), tv::COMPLETED);
  EXPECT_EQ(sink_.OfType("pettube.media.ready").size(), 1u);
}

TEST_F(CoordinatorTest, PermanentProbeFailureFailsTheMediaWithoutJobs) {
  prober_.Set("alice/bad/source",
              SourceFailure(ev::NO_VIDEO_STREAM, "source: has no video stream (audio only)"));
  ASSERT_TRUE(coordinator_->Handle(Uploaded("bad")).ok());
  EXPECT_TRUE(sink_.OfType("pettube.transcode.job.requested").empty());
  auto failed = sink_.OfType("pettube.media.failed");
  ASSERT_EQ(failed.size(), 1u);
  ev::MediaFailed payload;
  ASSERT_TRUE(broker_client::UnpackPayload(failed[0], &payload).ok());
  EXPECT_EQ(payload.reason(), ev::NO_VIDEO_STREAM);
  EXPECT_EQ(payload.error(), "source: has no video stream (audio only)");
}

TEST_F(CoordinatorTest, EmptySourceFailsWithoutProbing) {
  CloudEvent e = Uploaded("empty", 0);
  ASSERT_TRUE(coordinator_->Handle(e).ok());
  EXPECT_EQ(prober_.probes(), 0);
  EXPECT_EQ(coordinator_->GetMedia("empty")->reason(), ev::SOURCE_EMPTY);
}

TEST_F(CoordinatorTest, UnreachableSourceIsRetriedLater) {
  prober_.Set("alice/m2/source",
              WithFailureReason(absl::UnavailableError("probe: Connection refused"),
                                ev::SOURCE_UNREADABLE));
  EXPECT_EQ(coordinator_->Handle(Uploaded("m2")).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(coordinator_->GetMedia("m2").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, DeleteCancelsOutstandingJobsAndTellsWatchers) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  ASSERT_TRUE(coordinator_->Handle(Completed("m1", "poster")).ok());
  absl::Notification cancelled;
  auto handle = coordinator_->Watch("m1", "240p", [&](const tv::Job& j) {
    if (j.state() == tv::CANCELLED) cancelled.Notify();
  });
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(coordinator_->Handle(Deleted("m1")).ok());
  EXPECT_TRUE(cancelled.WaitForNotificationWithTimeout(absl::Seconds(5)));
  coordinator_->Unwatch(*handle);
  EXPECT_EQ(coordinator_->GetJob("m1", "poster")->state(), tv::SUCCEEDED);
  EXPECT_EQ(coordinator_->GetMedia("m1")->state(), tv::PLAN_CANCELLED);
  EXPECT_EQ(coordinator_->RetryJob("m1", "240p").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(CoordinatorTest, DeleteBeforeUploadLeavesATombstone) {
  ASSERT_TRUE(coordinator_->Handle(Deleted("m1")).ok());
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  EXPECT_TRUE(sink_.OfType("pettube.transcode.job.requested").empty());
}

TEST_F(CoordinatorTest, UnpublishedEventsArePublishedAgainAfterRestart) {
  sink_.Hold();
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  EXPECT_EQ(sink_.OfType("pettube.transcode.job.requested").size(), 2u);
  Open();  // a restart: the broker never acked
  auto requests = sink_.OfType("pettube.transcode.job.requested");
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[2].id(), requests[0].id());
  EXPECT_EQ(coordinator_->GetJob("m1", "240p")->state(), tv::PENDING);
}

TEST_F(CoordinatorTest, CancelStopsOutstandingJobsOnce) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  auto r = coordinator_->Cancel("m1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state(), tv::PLAN_CANCELLED);
  EXPECT_EQ(coordinator_->Cancel("m1").status().code(), absl::StatusCode::kFailedPrecondition);
  // A cancelled (not deleted) item can be re-planned.
  auto again = coordinator_->RetryMedia("m1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->generation(), 2);
  EXPECT_EQ(again->jobs(0).generation(), 2);
  EXPECT_EQ(sink_.OfType("pettube.transcode.job.requested").back().id(), "m1.poster.g2");
}

TEST_F(CoordinatorTest, DeadLetteredJobFailsTheMediaOnce) {
  ASSERT_TRUE(coordinator_->Handle(Uploaded("m1")).ok());
  CloudEvent request = sink_.OfType("pettube.transcode.job.requested")[0];
  ASSERT_TRUE(coordinator_->OnDeadLetter(request, 3, "ack deadline exceeded").ok());
  ASSERT_TRUE(coordinator_->OnDeadLetter(request, 3, "ack deadline exceeded").ok());
  auto job = coordinator_->GetJob("m1", "240p");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), tv::FAILED);
  EXPECT_EQ(job->reason(), ev::ATTEMPTS_EXHAUSTED);
  EXPECT_EQ(job->error(), "dead-lettered after 3 attempts; last: ack deadline exceeded");
  EXPECT_EQ(sink_.OfType("pettube.media.failed").size(), 1u);
  // A retried job's new generation is not failed by the old dead letter.
  ASSERT_TRUE(coordinator_->RetryJob("m1", "240p").ok());
  ASSERT_TRUE(coordinator_->OnDeadLetter(request, 3, "ack deadline exceeded").ok());
  auto retried = coordinator_->GetJob("m1", "240p");
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->generation(), 2);
  EXPECT_NE(retried->state(), tv::FAILED);  // PENDING or QUEUED
}

TEST_F(CoordinatorTest, MalformedEventsAreDroppedNotRetried) {
  CloudEvent e = Uploaded("m1");
  e.mutable_proto_data()->set_value("garbage");
  EXPECT_TRUE(coordinator_->Handle(e).ok());
  CloudEvent other;
  other.set_type("pettube.something.else");
  EXPECT_TRUE(coordinator_->Handle(other).ok());
  EXPECT_TRUE(sink_.events().empty());
}

}  // namespace
}  // namespace pettube::transcode
