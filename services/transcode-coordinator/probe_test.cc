#include "services/transcode-coordinator/probe.h"

#include "gtest/gtest.h"
#include "services/transcode-coordinator/failure.h"

namespace pettube::transcode {
namespace {

using ::pettube::events::v1::FailureReason;

// Trimmed from real ffprobe 5.1 output for a 2 s 320x240 H.264/AAC clip.
constexpr char kClip[] = R"({
  "streams": [
    {"index": 0, "codec_name": "h264", "profile": "High", "codec_type": "video",
     "codec_tag_string": "avc1", "width": 320, "height": 240, "pix_fmt": "yuv420p",
     "level": 13, "r_frame_rate": "30/1", "avg_frame_rate": "30/1", "duration": "2.000000",
     "bit_rate": "284984", "disposition": {"default": 1, "attached_pic": 0}},
    {"index": 1, "codec_name": "aac", "profile": "LC", "codec_type": "audio",
     "sample_rate": "48000", "channels": 1, "bit_rate": "69937", "duration": "2.000000"}
  ],
  "format": {"filename": "clip.mp4", "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
             "duration": "2.000000", "size": "92471", "bit_rate": "369884"}
})";

TEST(ParseProbeJsonTest, ReadsVideoAndAudioFacts) {
  auto info = ParseProbeJson(kClip);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width(), 320);
  EXPECT_EQ(info->height(), 240);
  EXPECT_EQ(info->display_width(), 320);
  EXPECT_EQ(info->display_height(), 240);
  EXPECT_EQ(info->rotation(), 0);
  EXPECT_EQ(info->video_codec(), "h264");
  EXPECT_EQ(info->video_profile(), "High");
  EXPECT_EQ(info->container(), "mov,mp4,m4a,3gp,3g2,mj2");
  EXPECT_DOUBLE_EQ(info->frame_rate(), 30.0);
  EXPECT_EQ(info->duration().seconds(), 2);
  EXPECT_TRUE(info->has_audio());
  EXPECT_EQ(info->audio_codec(), "aac");
  EXPECT_EQ(info->audio_sample_rate(), 48000);
  EXPECT_EQ(info->audio_channels(), 1);
  EXPECT_EQ(info->video_bitrate_kbps(), 284);
  EXPECT_EQ(info->size_bytes(), 92471);
}

TEST(ParseProbeJsonTest, DisplayMatrixRotationSwapsDisplaySize) {
  std::string json = kClip;
  json.replace(json.find("\"disposition\""), 0,
               R"("side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}], )");
  auto info = ParseProbeJson(json);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rotation(), 270);
  EXPECT_EQ(info->display_width(), 240);
  EXPECT_EQ(info->display_height(), 320);
}

TEST(ParseProbeJsonTest, LegacyRotateTagIsRead) {
  std::string json = kClip;
  json.replace(json.find("\"disposition\""), 0, R"("tags": {"rotate": "180"}, )");
  auto info = ParseProbeJson(json);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->rotation(), 180);
  EXPECT_EQ(info->display_width(), 320);
}

TEST(ParseProbeJsonTest, AudioOnlyIsRefusedAsNoVideoStream) {
  auto info = ParseProbeJson(R"({"streams": [{"codec_type": "audio", "codec_name": "aac"}],
      "format": {"format_name": "mov,mp4", "duration": "2.0"}})");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FailureReasonOf(info.status()), events::v1::NO_VIDEO_STREAM);
  EXPECT_NE(info.status().message().find("audio only"), std::string::npos);
}

TEST(ParseProbeJsonTest, CoverArtDoesNotCountAsVideo) {
  auto info = ParseProbeJson(R"({"streams": [
      {"codec_type": "audio", "codec_name": "mp3"},
      {"codec_type": "video", "codec_name": "mjpeg", "width": 500, "height": 500,
       "disposition": {"attached_pic": 1}}],
      "format": {"format_name": "mp3", "duration": "200.0"}})");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(FailureReasonOf(info.status()), events::v1::NO_VIDEO_STREAM);
}

TEST(ParseProbeJsonTest, EmptyObjectIsCorrupt) {
  // What ffprobe prints for a truncated MP4 (no moov atom) or a zero-length file.
  auto info = ParseProbeJson("{\n\n}\n");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(FailureReasonOf(info.status()), events::v1::SOURCE_CORRUPT);
}

TEST(ParseProbeJsonTest, GarbageIsCorrupt) {
  auto info = ParseProbeJson("not json at all");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(FailureReasonOf(info.status()), events::v1::SOURCE_CORRUPT);
}

TEST(ParseProbeJsonTest, AbsurdResolutionIsOutOfRange) {
  std::string json = kClip;
  json.replace(json.find("\"width\": 320"), 12, "\"width\": 100000");
  auto info = ParseProbeJson(json);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(FailureReasonOf(info.status()), events::v1::SOURCE_OUT_OF_RANGE);
  EXPECT_NE(info.status().message().find("100000x240"), std::string::npos)
      << info.status().message();
}

TEST(ParseProbeJsonTest, ZeroDurationIsOutOfRange) {
  auto info = ParseProbeJson(R"({"streams": [{"codec_type": "video", "codec_name": "png",
      "width": 64, "height": 64}], "format": {"format_name": "png_pipe"}})");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(FailureReasonOf(info.status()), events::v1::SOURCE_OUT_OF_RANGE);
}

TEST(ClassifyProbeFailureTest, MissingMoovAtomIsCorruptAndPermanent) {
  absl::Status s = ClassifyProbeFailure(
      "probe", 1,
      "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found\n"
      "http://h/objects/originals/u/m/source: Invalid data found when processing input\n");
  EXPECT_TRUE(IsPermanent(s));
  EXPECT_EQ(FailureReasonOf(s), events::v1::SOURCE_CORRUPT);
  EXPECT_EQ(s.message(),
            "probe: http://h/objects/originals/u/m/source: Invalid data found when processing "
            "input");
}

TEST(ClassifyProbeFailureTest, ConnectionRefusedIsRetryable) {
  absl::Status s = ClassifyProbeFailure(
      "probe", 1, "[tcp @ 0x55] Connection to tcp://127.0.0.1:1 failed: Connection refused\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(IsPermanent(s));
  EXPECT_EQ(FailureReasonOf(s), events::v1::SOURCE_UNREADABLE);
}

TEST(ClassifyProbeFailureTest, NotFoundIsPermanent) {
  absl::Status s = ClassifyProbeFailure("probe", 1, "Server returned 404 Not Found\n");
  EXPECT_TRUE(IsPermanent(s));
  EXPECT_EQ(FailureReasonOf(s), events::v1::SOURCE_UNREADABLE);
}

TEST(ClassifyProbeFailureTest, SilentFailureNamesExitCode) {
  absl::Status s = ClassifyProbeFailure("ffmpeg 720p", 187, "");
  EXPECT_EQ(s.message(), "ffmpeg 720p: exited with status 187");
}

}  // namespace
}  // namespace pettube::transcode
