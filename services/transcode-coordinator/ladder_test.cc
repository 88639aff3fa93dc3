#include "services/transcode-coordinator/ladder.h"

#include "gtest/gtest.h"
#include "libs/time/proto_time.h"

namespace pettube::transcode {
namespace {

using ::pettube::events::v1::RenditionSpec;
using ::pettube::events::v1::SourceInfo;

SourceInfo Source(int w, int h, int rotation = 0, bool audio = true) {
  SourceInfo s;
  s.set_width(w);
  s.set_height(h);
  s.set_rotation(rotation);
  const bool swap = rotation == 90 || rotation == 270;
  s.set_display_width(swap ? h : w);
  s.set_display_height(swap ? w : h);
  s.set_has_audio(audio);
  *s.mutable_duration() = time::ToProto(absl::Seconds(30));
  return s;
}

std::vector<std::string> Names(const std::vector<RenditionSpec>& ladder) {
  std::vector<std::string> names;
  for (const auto& r : ladder) names.push_back(r.name());
  return names;
}

TEST(PlanLadderTest, FullHdSourceGetsEveryPresetAndAPoster) {
  auto ladder = PlanLadder(Source(1920, 1080), DefaultPresets());
  ASSERT_TRUE(ladder.ok()) << ladder.status();
  EXPECT_EQ(Names(*ladder), (std::vector<std::string>{"1080p", "720p", "480p", "360p", "poster"}));
  EXPECT_EQ((*ladder)[1].width(), 1280);
  EXPECT_EQ((*ladder)[1].height(), 720);
  EXPECT_EQ((*ladder)[1].video_bitrate_kbps(), 2800);
  EXPECT_EQ((*ladder)[1].audio_codec(), "aac");
  EXPECT_EQ((*ladder)[1].video_profile(), "high");
  EXPECT_EQ((*ladder)[1].hls_segment_seconds(), 4);
  // 480p of 16:9 is 853.3 wide: rounded to even.
  EXPECT_EQ((*ladder)[2].width(), 854);
  EXPECT_EQ(ladder->back().kind(), events::v1::POSTER);
  EXPECT_EQ(ladder->back().width(), 1280);
  EXPECT_EQ(ladder->back().height(), 720);
  EXPECT_EQ(time::FromProto(ladder->back().poster_offset()), absl::Seconds(3));
}

TEST(PlanLadderTest, NeverUpscalesPastTheSource) {
  auto ladder = PlanLadder(Source(1280, 720), DefaultPresets());
  ASSERT_TRUE(ladder.ok());
  EXPECT_EQ(Names(*ladder), (std::vector<std::string>{"720p", "480p", "360p", "poster"}));
}

TEST(PlanLadderTest, RotatedPortraitSourceKeepsItsAspect) {
  // A phone video: coded 1920x1080, rotated 90 degrees: 1080x1920 upright.
  auto ladder = PlanLadder(Source(1920, 1080, 90), DefaultPresets());
  ASSERT_TRUE(ladder.ok());
  ASSERT_EQ((*ladder)[1].name(), "720p");
  EXPECT_EQ((*ladder)[1].width(), 720);
  EXPECT_EQ((*ladder)[1].height(), 1280);
}

TEST(PlanLadderTest, TinySourceGetsOneRenditionAtItsOwnSize) {
  auto ladder = PlanLadder(Source(320, 240), DefaultPresets());
  ASSERT_TRUE(ladder.ok());
  EXPECT_EQ(Names(*ladder), (std::vector<std::string>{"240p", "poster"}));
  EXPECT_EQ((*ladder)[0].width(), 320);
  EXPECT_EQ((*ladder)[0].height(), 240);
  // 800 kbit/s for 360 lines, scaled by area to 240 lines.
  EXPECT_EQ((*ladder)[0].video_bitrate_kbps(), 356);
}

TEST(PlanLadderTest, OddSourceDimensionsBecomeEven) {
  auto ladder = PlanLadder(Source(321, 241), DefaultPresets());
  ASSERT_TRUE(ladder.ok());
  EXPECT_EQ((*ladder)[0].height(), 240);
  EXPECT_EQ((*ladder)[0].width() % 2, 0);
  EXPECT_LE((*ladder)[0].width(), 322);
}

TEST(PlanLadderTest, SilentSourceGetsNoAudio) {
  auto ladder = PlanLadder(Source(1280, 720, 0, /*audio=*/false), DefaultPresets());
  ASSERT_TRUE(ladder.ok());
  EXPECT_EQ((*ladder)[0].audio_bitrate_kbps(), 0);
  EXPECT_EQ((*ladder)[0].audio_codec(), "");
  EXPECT_EQ((*ladder)[0].format(), "mp4/h264");
}

TEST(ParsePresetsTest, ParsesEntries) {
  auto presets = ParsePresets("720p:720:2800:128, 240p:240:400:64");
  ASSERT_TRUE(presets.ok()) << presets.status();
  ASSERT_EQ(presets->size(), 2u);
  EXPECT_EQ((*presets)[1].name, "240p");
  EXPECT_EQ((*presets)[1].short_side, 240);
  EXPECT_EQ((*presets)[1].video_kbps, 400);
  EXPECT_EQ((*presets)[1].audio_kbps, 64);
}

TEST(ParsePresetsTest, RefusesBadEntriesNamingThem) {
  auto odd = ParsePresets("720p:720:2800:128,bad:241:400:64");
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(odd.status().message().find("presets[1] \"bad:241:400:64\""), std::string::npos)
      << odd.status().message();
  EXPECT_FALSE(ParsePresets("poster:240:400:64").ok());
  EXPECT_FALSE(ParsePresets("a:240:400:64,a:360:800:64").ok());
  EXPECT_FALSE(ParsePresets("720p:720:2800").ok());
  EXPECT_FALSE(ParsePresets("").ok());
}

}  // namespace
}  // namespace pettube::transcode
