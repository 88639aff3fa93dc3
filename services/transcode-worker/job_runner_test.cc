// JobRunner with the real ffmpeg on tiny generated clips (2 s, 320x240).
#include "services/transcode-worker/job_runner.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/time/proto_time.h"
#include "services/transcode-coordinator/failure.h"
#include "services/transcode-coordinator/ladder.h"
#include "services/transcode-coordinator/probe.h"
#include "services/transcode-worker/subprocess.h"

namespace pettube::transcode {
namespace {

namespace ev = ::pettube::events::v1;
namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Keeps what was written, in memory.
class MemoryObjects : public ObjectWriter {
 public:
  absl::StatusOr<ev::ObjectRef> PutBytes(absl::string_view bucket, absl::string_view key,
                                         absl::string_view type, absl::string_view bytes) override {
    absl::MutexLock lock(&mu_);
    objects_[std::string(key)] = std::string(bytes);
    ev::ObjectRef ref;
    ref.set_store(std::string(bucket));
    ref.set_key(std::string(key));
    ref.set_size_bytes(static_cast<int64_t>(bytes.size()));
    ref.set_sha256(Sha256Of(bytes));
    ref.set_content_type(std::string(type));
    return ref;
  }
  absl::StatusOr<ev::ObjectRef> PutFile(absl::string_view bucket, absl::string_view key,
                                        absl::string_view type, const std::string& path) override {
    return PutBytes(bucket, key, type, ReadAll(path));
  }
  std::map<std::string, std::string> objects() {
    absl::MutexLock lock(&mu_);
    return objects_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::string> objects_;
};

// Generates a clip with ffmpeg's lavfi test source and a sine tone.
std::string MakeClip(const std::string& dir, const std::string& name, int seconds,
                     const std::string& size = "320x240") {
  const std::string path = dir + "/" + name;
  Subprocess::Options o;
  o.argv = {"/usr/bin/ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            absl::StrCat("testsrc2=size=", size, ":rate=30"),
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            absl::StrCat(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            path};
  auto p = Subprocess::Start(o);
  EXPECT_TRUE(p.ok());
  auto r = (*p)->Wait();
  EXPECT_EQ(r.exit_code, 0) << r.stderr_tail;
  return path;
}

class JobRunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(absl::StrCat(getenv("TEST_TMPDIR"), "/clips"));
    fs::create_directories(*dir_);
    clip_ = new std::string(MakeClip(*dir_, "clip.mp4", 2));
  }

  void SetUp() override {
    scratch_ = absl::StrCat(getenv("TEST_TMPDIR"), "/scratch-",
                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(scratch_);
    JobRunner::Options o;
    o.scratch_dir = scratch_;
    o.worker = "test-worker";
    o.progress_interval = absl::ZeroDuration();
    o.source_url = [](const ev::ObjectRef& ref) { return ref.key(); };
    runner_ = std::make_unique<JobRunner>(o, objects_, nullptr);
  }

  // The job the coordinator would plan for `source` (a local path).
  ev::TranscodeJobRequested Job(const std::string& source, const std::string& rendition) {
    ev::SourceInfo info;
    info.set_width(320);
    info.set_height(240);
    info.set_display_width(320);
    info.set_display_height(240);
    info.set_has_audio(true);
    *info.mutable_duration() = time::ToProto(absl::Seconds(2));
    LadderOptions lo;
    lo.hls_segment_seconds = 1;
    auto ladder = PlanLadder(info, DefaultPresets(), lo);
    EXPECT_TRUE(ladder.ok());
    ev::TranscodeJobRequested job;
    for (const auto& spec : *ladder) {
      if (spec.name() == rendition) *job.mutable_rendition() = spec;
    }
    job.set_job("media/m1/jobs/" + rendition);
    job.set_media("media/m1");
    job.set_owner("alice");
    job.mutable_source()->set_store("originals");
    job.mutable_source()->set_key(source);
    job.set_output_key(rendition == "poster" ? "alice/m1/poster.jpg"
                                             : "alice/m1/" + rendition + ".mp4");
    job.set_hls_playlist_key("alice/m1/hls/" + rendition + ".m3u8");
    job.set_hls_media_key("alice/m1/hls/" + rendition + ".mp4");
    job.set_generation(1);
    *job.mutable_source_info() = info;
    *job.mutable_timeout() = time::ToProto(absl::Seconds(60));
    return job;
  }

  bool ScratchIsEmpty() { return fs::is_empty(scratch_); }

  static std::string* dir_;
  static std::string* clip_;
  std::string scratch_;
  MemoryObjects objects_;
  std::unique_ptr<JobRunner> runner_;
};
std::string* JobRunnerTest::dir_ = nullptr;
std::string* JobRunnerTest::clip_ = nullptr;

TEST_F(JobRunnerTest, VideoRenditionProducesFaststartMp4AndHlsVariant) {
  CancelToken cancel;
  std::vector<double> fractions;
  auto done = runner_->Run(Job(*clip_, "240p"), 1, cancel,
                           [&](const ProgressUpdate&, double f) { fractions.push_back(f); });
  ASSERT_TRUE(done.ok()) << done.status();
  auto objects = objects_.objects();
  ASSERT_EQ(objects.count("alice/m1/240p.mp4"), 1u);
  const std::string& mp4 = objects["alice/m1/240p.mp4"];
  // +faststart: the index (moov) comes before the media data (mdat).
  ASSERT_NE(mp4.find("moov"), std::string::npos);
  EXPECT_LT(mp4.find("moov"), mp4.find("mdat"));
  const std::string& m3u8 = objects["alice/m1/hls/240p.m3u8"];
  EXPECT_NE(m3u8.find("#EXT-X-MAP:URI=\"240p.mp4\""), std::string::npos) << m3u8;
  EXPECT_NE(m3u8.find("#EXT-X-BYTERANGE:"), std::string::npos) << m3u8;
  EXPECT_NE(m3u8.find("#EXT-X-ENDLIST"), std::string::npos);
  EXPECT_EQ(objects.count("alice/m1/hls/240p.mp4"), 1u);

  EXPECT_EQ(done->rendition().width(), 320);
  EXPECT_EQ(done->rendition().height(), 240);
  EXPECT_EQ(done->rendition().video_codec(), "h264");
  EXPECT_EQ(done->rendition().audio_codec(), "aac");
  EXPECT_EQ(done->codecs().rfind("avc1.6400", 0), 0u) << done->codecs();
  EXPECT_NE(done->codecs().find(",mp4a.40.2"), std::string::npos);
  EXPECT_GT(done->bitrate_bps(), 0);
  EXPECT_GE(done->peak_bitrate_bps(), done->bitrate_bps() / 2);
  EXPECT_NEAR(absl::ToDoubleSeconds(time::FromProto(done->duration())), 2.0, 0.1);
  EXPECT_NEAR(done->frame_rate(), 30.0, 0.01);
  EXPECT_EQ(done->output().sha256(), Sha256Of(mp4));
  EXPECT_EQ(done->output().size_bytes(), static_cast<int64_t>(mp4.size()));
  EXPECT_EQ(done->hls_playlist().key(), "alice/m1/hls/240p.m3u8");
  EXPECT_EQ(done->worker(), "test-worker");
  EXPECT_EQ(done->attempt(), 1);
  ASSERT_FALSE(fractions.empty());
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
  EXPECT_TRUE(ScratchIsEmpty());
}

TEST_F(JobRunnerTest, PosterIsAJpeg) {
  CancelToken cancel;
  auto done = runner_->Run(Job(*clip_, "poster"), 1, cancel, nullptr);
  ASSERT_TRUE(done.ok()) << done.status();
  const std::string jpg = objects_.objects()["alice/m1/poster.jpg"];
  ASSERT_GT(jpg.size(), 3u);
  EXPECT_EQ(static_cast<unsigned char>(jpg[0]), 0xFF);
  EXPECT_EQ(static_cast<unsigned char>(jpg[1]), 0xD8);
  EXPECT_EQ(done->output().content_type(), "image/jpeg");
  EXPECT_TRUE(ScratchIsEmpty());
}

TEST_F(JobRunnerTest, TruncatedSourceFailsWithFfmpegsOwnErrorLine) {
  const std::string full = ReadAll(*clip_);
  const std::string truncated = *dir_ + "/truncated.mp4";
  std::ofstream(truncated, std::ios::binary) << full.substr(0, full.size() / 3);
  CancelToken cancel;
  auto done = runner_->Run(Job(truncated, "240p"), 2, cancel, nullptr);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(FailureReasonOf(done.status()), ev::TRANSCODE_FAILED);
  // ffmpeg's line, e.g. "...: Invalid data found when processing input" or
  // "moov atom not found".
  EXPECT_NE(done.status().message().find("ffmpeg 240p: "), std::string::npos)
      << done.status().message();
  EXPECT_GT(done.status().message().size(), std::string("ffmpeg 240p: ").size());
  EXPECT_TRUE(objects_.objects().empty());
  EXPECT_TRUE(ScratchIsEmpty());
}

TEST_F(JobRunnerTest, RenditionFfmpegRejectsFails) {
  ev::TranscodeJobRequested job = Job(*clip_, "240p");
  // libx264 refuses odd dimensions for yuv420p.
  job.mutable_rendition()->set_width(321);
  job.mutable_rendition()->set_height(241);
  CancelToken cancel;
  auto done = runner_->Run(job, 1, cancel, nullptr);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(FailureReasonOf(done.status()), ev::TRANSCODE_FAILED);
  EXPECT_FALSE(IsPermanent(done.status()));
  EXPECT_TRUE(ScratchIsEmpty());
}

TEST_F(JobRunnerTest, CancelKillsFfmpegAndLeavesNoOutput) {
  const std::string longer = MakeClip(*dir_, "long.mp4", 20);
  ev::TranscodeJobRequested job = Job(longer, "240p");
  *job.mutable_source_info()->mutable_duration() = time::ToProto(absl::Seconds(20));
  CancelToken cancel;
  auto done = runner_->Run(job, 1, cancel,
                           [&](const ProgressUpdate&, double) { cancel.Cancel("media deleted"); });
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(done.status().code(), absl::StatusCode::kCancelled) << done.status();
  EXPECT_NE(done.status().message().find("media deleted"), std::string::npos);
  EXPECT_TRUE(objects_.objects().empty());
  EXPECT_TRUE(ScratchIsEmpty());
}

TEST_F(JobRunnerTest, TimeoutKillsFfmpeg) {
  ev::TranscodeJobRequested job = Job(*clip_, "240p");
  *job.mutable_timeout() = time::ToProto(absl::Milliseconds(1));
  CancelToken cancel;
  auto done = runner_->Run(job, 1, cancel, nullptr);
  ASSERT_FALSE(done.ok());
  EXPECT_EQ(FailureReasonOf(done.status()), ev::JOB_TIMEOUT) << done.status();
  EXPECT_TRUE(ScratchIsEmpty());
}

TEST_F(JobRunnerTest, SweepRemovesLeftovers) {
  fs::create_directories(scratch_ + "/job-left/hls");
  std::ofstream(scratch_ + "/job-left/hls/x.mp4") << "partial";
  ASSERT_TRUE(runner_->SweepScratch().ok());
  EXPECT_TRUE(ScratchIsEmpty());
}

}  // namespace
}  // namespace pettube::transcode
