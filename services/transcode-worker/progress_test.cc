#include "services/transcode-worker/progress.h"

#include "gtest/gtest.h"
#include "services/transcode-worker/hls_stats.h"

namespace pettube::transcode {
namespace {

TEST(ProgressParserTest, EmitsAnUpdatePerBlock) {
  ProgressParser p;
  EXPECT_FALSE(p.Feed("frame=30").has_value());
  EXPECT_FALSE(p.Feed("out_time_us=1000000").has_value());
  EXPECT_FALSE(p.Feed("speed=2.5x").has_value());
  auto u = p.Feed("progress=continue");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->out_time, absl::Seconds(1));
  EXPECT_DOUBLE_EQ(u->speed, 2.5);
  EXPECT_FALSE(u->end);
  p.Feed("out_time_us=2005333");
  p.Feed("speed=N/A");
  u = p.Feed("progress=end");
  ASSERT_TRUE(u.has_value());
  EXPECT_TRUE(u->end);
  EXPECT_EQ(u->out_time, absl::Microseconds(2005333));
}

TEST(ProgressParserTest, IgnoresGarbage) {
  ProgressParser p;
  EXPECT_FALSE(p.Feed("").has_value());
  EXPECT_FALSE(p.Feed("no equals sign").has_value());
  p.Feed("out_time_us=-5");
  auto u = p.Feed("progress=continue");
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->out_time, absl::ZeroDuration());
}

TEST(ProgressThrottleTest, LetsOnePerIntervalAndTheEnd) {
  ProgressThrottle t(absl::Seconds(1));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(t.Allow(t0, false));
  EXPECT_FALSE(t.Allow(t0 + absl::Milliseconds(500), false));
  EXPECT_TRUE(t.Allow(t0 + absl::Milliseconds(600), true));
  EXPECT_FALSE(t.Allow(t0 + absl::Milliseconds(900), false));
  EXPECT_TRUE(t.Allow(t0 + absl::Milliseconds(1700), false));
}

TEST(FractionTest, ClampsAndHandlesUnknownTotals) {
  EXPECT_DOUBLE_EQ(Fraction(absl::Seconds(1), absl::Seconds(4)), 0.25);
  EXPECT_DOUBLE_EQ(Fraction(absl::Seconds(5), absl::Seconds(4)), 1.0);
  EXPECT_DOUBLE_EQ(Fraction(absl::Seconds(1), absl::ZeroDuration()), 0.0);
}

TEST(PeakSegmentBitrateTest, TakesTheDensestSegment) {
  const char* m3u8 =
      "#EXTM3U\n#EXT-X-MAP:URI=\"240p.mp4\",BYTERANGE=\"1372@0\"\n"
      "#EXTINF:1.000000,\n#EXT-X-BYTERANGE:39181@1372\n240p.mp4\n"
      "#EXTINF:0.500000,\n#EXT-X-BYTERANGE:48581@40553\n240p.mp4\n#EXT-X-ENDLIST\n";
  EXPECT_EQ(PeakSegmentBitrate(m3u8), 48581 * 8 * 2);
  EXPECT_EQ(PeakSegmentBitrate("#EXTM3U\n"), 0);
}

}  // namespace
}  // namespace pettube::transcode
