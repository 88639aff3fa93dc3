#include "cli/pettube/media_format.h"

#include "gtest/gtest.h"
#include "libs/time/proto_time.h"

namespace pettube::cli {
namespace {

using catalog::v1::Media;

Media ReadyMedia() {
  Media m;
  m.set_name("media/m1");
  m.set_title("Rex at the beach");
  m.set_state(catalog::v1::READY);
  m.set_progress(1.0);
  *m.mutable_create_time() = time::ToProto(absl::FromUnixSeconds(1000));
  *m.mutable_source()->mutable_duration() = time::ToProto(absl::Seconds(2));
  for (const char* name : {"720p", "360p"}) {
    auto* r = m.add_renditions();
    r->set_name(name);
    r->set_url(std::string("http://h/o/t/renditions/u/m1/") + name + ".mp4");
    r->set_size_bytes(1000);
  }
  m.mutable_poster()->set_name("poster");
  m.mutable_poster()->set_url("http://h/o/t/renditions/u/m1/poster.jpg");
  m.set_hls_master_url("http://h/o/t/renditions/u/m1/hls/master.m3u8");
  return m;
}

TEST(MediaNameTest, AcceptsIdOrResourceName) {
  EXPECT_EQ(*MediaName("abc"), "media/abc");
  EXPECT_EQ(*MediaName("media/a.b_c-1"), "media/a.b_c-1");
  for (const char* bad : {"", "media/", "..", "media/..", "a/b", "a b", "media/x?y"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(MediaName(bad).status())) << bad;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(MediaName(std::string(129, 'a')).status()));
}

TEST(MediaTableTest, OneRowPerMediaWithStateDurationAndAge) {
  Media processing = ReadyMedia();
  processing.set_name("media/m2");
  processing.set_state(catalog::v1::PROCESSING);
  processing.set_progress(0.42);
  const std::string table = MediaTable({ReadyMedia(), processing}, absl::FromUnixSeconds(1180));
  EXPECT_NE(table.find("NAME"), std::string::npos);
  EXPECT_NE(table.find("media/m1"), std::string::npos) << table;
  EXPECT_NE(table.find("Rex at the beach"), std::string::npos);
  EXPECT_NE(table.find("READY"), std::string::npos);
  EXPECT_NE(table.find("PROCESSING 42%"), std::string::npos) << table;
  EXPECT_NE(table.find("2.0 s"), std::string::npos);
  EXPECT_NE(table.find("3 min ago"), std::string::npos);
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 3);
  EXPECT_NE(MediaTable({}, absl::Now()).find("no media yet"), std::string::npos);
}

TEST(PlayUrlTest, PicksLargestNamedOrHls) {
  const Media m = ReadyMedia();
  EXPECT_EQ(*PlayUrl(m, ""), m.renditions(0).url());
  EXPECT_EQ(*PlayUrl(m, "360p"), m.renditions(1).url());
  EXPECT_EQ(*PlayUrl(m, "poster"), m.poster().url());
  EXPECT_EQ(*PlayUrl(m, "hls"), m.hls_master_url());
  auto missing = PlayUrl(m, "1080p");
  ASSERT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_NE(missing.status().message().find("available: 720p, 360p, poster, hls"),
            absl::string_view::npos)
      << missing.status();
}

TEST(PlayUrlTest, NotReadyHasNoUrl) {
  Media m;
  m.set_name("media/m3");
  m.set_state(catalog::v1::PROCESSING);
  EXPECT_TRUE(absl::IsFailedPrecondition(PlayUrl(m, "").status()));
  EXPECT_TRUE(absl::IsNotFound(PlayUrl(m, "hls").status()));
}

TEST(PickRenditionTest, HlsIsNotAFile) {
  EXPECT_TRUE(absl::IsInvalidArgument(PickRendition(ReadyMedia(), "hls").status()));
  EXPECT_EQ(PickRendition(ReadyMedia(), "")->name(), "720p");
}

TEST(WatchLineTest, SaysStateProgressAndOutcome) {
  Media m = ReadyMedia();
  EXPECT_EQ(WatchLine(m), "media/m1  READY  renditions: 720p 360p");
  m.set_state(catalog::v1::PROCESSING);
  m.set_progress(0.5);
  EXPECT_EQ(WatchLine(m), "media/m1  PROCESSING 50%");
  m.set_state(catalog::v1::FAILED);
  m.set_error("ffprobe: no video stream");
  EXPECT_EQ(WatchLine(m), "media/m1  FAILED  error: ffprobe: no video stream");
}

TEST(MediaJsonTest, UsesProtoFieldNamesAndIncludesDefaults) {
  Media m;
  m.set_name("media/m4");
  const std::string json = MediaJson(m);
  EXPECT_NE(json.find("\"name\":\"media/m4\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"state\":\"MEDIA_STATE_UNSPECIFIED\""), std::string::npos) << json;
  EXPECT_NE(MediaJson(ReadyMedia()).find("\"hls_master_url\""), std::string::npos);
}

TEST(MediaDetailsTest, ListsRenditionsWithUrls) {
  const std::string text = MediaDetails(ReadyMedia(), absl::FromUnixSeconds(1060));
  EXPECT_NE(text.find("720p"), std::string::npos);
  EXPECT_NE(text.find("http://h/o/t/renditions/u/m1/360p.mp4"), std::string::npos) << text;
  EXPECT_NE(text.find("hls/master.m3u8"), std::string::npos);
}

}  // namespace
}  // namespace pettube::cli
