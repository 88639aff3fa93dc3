#include "services/transcode-coordinator/master_playlist.h"

#include "gtest/gtest.h"

namespace pettube::transcode {
namespace {

using ::pettube::events::v1::TranscodeJobCompleted;

TranscodeJobCompleted Variant(const std::string& name, int w, int h, int64_t avg, int64_t peak) {
  TranscodeJobCompleted c;
  c.mutable_rendition()->set_name(name);
  c.mutable_rendition()->set_kind(events::v1::VIDEO);
  c.mutable_rendition()->set_width(w);
  c.mutable_rendition()->set_height(h);
  c.set_bitrate_bps(avg);
  c.set_peak_bitrate_bps(peak);
  c.set_frame_rate(30);
  c.set_codecs(Rfc6381Codecs("High", 31, "LC"));
  return c;
}

TEST(Rfc6381CodecsTest, EncodesProfileAndLevel) {
  EXPECT_EQ(Rfc6381Codecs("High", 31, "LC"), "avc1.64001f,mp4a.40.2");
  EXPECT_EQ(Rfc6381Codecs("Main", 40, ""), "avc1.4d0028");
  EXPECT_EQ(Rfc6381Codecs("Constrained Baseline", 30, "HE-AAC"), "avc1.42e01e,mp4a.40.5");
}

TEST(MasterPlaylistTest, ListsVariantsHighestFirstAndSkipsThePoster) {
  TranscodeJobCompleted poster;
  poster.mutable_rendition()->set_name("poster");
  poster.mutable_rendition()->set_kind(events::v1::POSTER);
  std::string m3u8 = MasterPlaylist({Variant("360p", 640, 360, 900000, 1000000), poster,
                                     Variant("720p", 1280, 720, 2900000, 3100000)});
  EXPECT_EQ(m3u8,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=3100000,AVERAGE-BANDWIDTH=2900000,RESOLUTION=1280x720,"
            "FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\"\n720p.m3u8\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=1000000,AVERAGE-BANDWIDTH=900000,RESOLUTION=640x360,"
            "FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\"\n360p.m3u8\n");
}

}  // namespace
}  // namespace pettube::transcode
