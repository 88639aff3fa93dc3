// Rendering records for the API: every rendition, the poster and the HLS
// master get a signed URL the object server accepts, covering the item's
// prefix only, fresh on each render.

#include "services/media-catalog/media_view.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "services/media-catalog/media_event.h"
#include "services/media-catalog/test_events.h"

namespace pettube::catalog {
namespace {

namespace t = ::pettube::catalog::testing;

constexpr char kBase[] = "http://127.0.0.1:9999";

StoredMedia ReadyRecord() {
  StoredMedia m;
  m.set_media_id("m1");
  for (const auto& e : {t::Uploaded("m1", "alice", "cat"), t::JobCompleted("m1", "alice", "720p"),
                        t::Ready("m1", "alice")}) {
    auto decoded = DecodeEvent(e);
    EXPECT_TRUE(decoded.ok());
    MergeEvent(*decoded, &m);
  }
  m.set_version(3);
  return m;
}

// Splits "http://h:p/o/{token}/{path}" and checks it with the signer.
absl::Status VerifyUrl(const signed_url::UrlSigner& signer, const std::string& url,
                       absl::Time now) {
  if (!absl::StartsWith(url, std::string(kBase) + "/o/")) {
    return absl::InvalidArgumentError("not an object URL: " + url);
  }
  const std::string rest = url.substr(std::string(kBase).size() + 3);
  const size_t slash = rest.find('/');
  return signer.Verify(rest.substr(0, slash), rest.substr(slash + 1), now);
}

class MediaViewTest : public ::testing::Test {
 protected:
  MediaViewTest() {
    auto ring = signed_url::KeyRing::Parse(signed_url::KeyRing::GenerateText("k1"));
    EXPECT_TRUE(ring.ok());
    signer_ = std::make_shared<signed_url::UrlSigner>(*ring);
  }
  MediaView View() {
    MediaView::Options options;
    options.objects_url = std::string(kBase) + "/";
    options.url_ttl = absl::Minutes(10);
    options.now = [this] { return now_; };
    return MediaView(signer_, options);
  }

  std::shared_ptr<signed_url::UrlSigner> signer_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

TEST_F(MediaViewTest, EveryPlayableObjectHasASignedUrlForTheItemsPrefix) {
  const v1::Media m = View().Render(ReadyRecord());
  EXPECT_EQ(m.name(), "media/m1");
  EXPECT_EQ(m.state(), v1::READY);
  EXPECT_EQ(m.etag(), "v3");
  EXPECT_EQ(m.visibility(), v1::PRIVATE);
  EXPECT_EQ(m.source().width(), 1280);
  EXPECT_EQ(m.source().audio_codec(), "aac");
  ASSERT_EQ(m.renditions_size(), 2);
  EXPECT_EQ(m.renditions(0).name(), "720p");  // largest first
  EXPECT_EQ(m.renditions(1).name(), "360p");
  EXPECT_EQ(m.renditions(0).video_codec(), "h264");
  EXPECT_EQ(m.renditions(0).bitrate_kbps(), 2880);
  EXPECT_EQ(m.poster().name(), "poster");
  for (const std::string& url : {m.renditions(0).url(), m.renditions(0).hls_playlist_url(),
                                 m.renditions(1).url(), m.poster().url(), m.hls_master_url()}) {
    ASSERT_FALSE(url.empty());
    EXPECT_TRUE(VerifyUrl(*signer_, url, now_).ok()) << url;
    EXPECT_FALSE(VerifyUrl(*signer_, url, now_ + absl::Minutes(11)).ok()) << "expired " << url;
  }
  EXPECT_TRUE(absl::EndsWith(m.hls_master_url(), "/renditions/alice/m1/hls/master.m3u8"));
  // The master's token also covers the variant it references relatively.
  const std::string master = m.hls_master_url();
  std::string variant = master.substr(0, master.rfind('/') + 1) + "720p.m3u8";
  EXPECT_TRUE(VerifyUrl(*signer_, variant, now_).ok());
  // ...but not another item's objects.
  std::string other = master;
  other.replace(other.find("/alice/m1/"), 10, "/alice/m10/");
  EXPECT_FALSE(VerifyUrl(*signer_, other, now_).ok());
  EXPECT_EQ(m.url_expire_time().seconds(), absl::ToUnixSeconds(now_ + absl::Minutes(10)));
}

TEST_F(MediaViewTest, EachRenderMintsAFreshUrl) {
  const std::string first = View().Render(ReadyRecord()).hls_master_url();
  now_ += absl::Minutes(5);
  const std::string second = View().Render(ReadyRecord()).hls_master_url();
  EXPECT_NE(first, second);
  EXPECT_TRUE(VerifyUrl(*signer_, second, now_ + absl::Minutes(9)).ok());
}

TEST_F(MediaViewTest, ObjectsOutsideTheItemsPrefixGetNoUrl) {
  StoredMedia m = ReadyRecord();
  (*m.mutable_renditions())["360p"].mutable_output()->set_key("mallory/m9/360p.mp4");
  m.set_hls_master_key("alice/m1/../../mallory/m9/hls/master.m3u8");
  const v1::Media out = View().Render(m);
  EXPECT_EQ(out.renditions(1).name(), "360p");
  EXPECT_EQ(out.renditions(1).url(), "");
  EXPECT_EQ(out.hls_master_url(), "");  // ".." segments are never signed
  EXPECT_FALSE(out.renditions(0).url().empty());
}

TEST_F(MediaViewTest, NeighboursOfThePrefixAndOtherBucketsGetNoUrl) {
  for (const auto& [store, key] : std::vector<std::pair<std::string, std::string>>{
           {"renditions", "alice/m10/360p.mp4"},  // m10 is not under m1/
           {"renditions", "alice/m1"},            // the prefix itself is no object
           {"originals", "alice/m1/360p.mp4"},    // never the original's bucket
           {"renditionsx", "alice/m1/360p.mp4"},
           {"renditions", "alice//m1/360p.mp4"},
           {"renditions", "alice/m1/./360p.mp4"}}) {
    StoredMedia m = ReadyRecord();
    auto* output = (*m.mutable_renditions())["360p"].mutable_output();
    output->set_store(store);
    output->set_key(key);
    const v1::Media out = View().Render(m);
    ASSERT_EQ(out.renditions(1).name(), "360p");
    EXPECT_EQ(out.renditions(1).url(), "") << store << "/" << key;
  }
  StoredMedia m = ReadyRecord();
  (*m.mutable_renditions())["360p"].mutable_output()->set_store("");  // default bucket
  EXPECT_TRUE(
      absl::EndsWith(View().Render(m).renditions(1).url(), "/renditions/alice/m1/360p.mp4"));
}

TEST_F(MediaViewTest, WithoutASignerUrlsAreEmpty) {
  MediaView::Options options;
  options.objects_url = kBase;
  const v1::Media out = MediaView(nullptr, options).Render(ReadyRecord());
  EXPECT_EQ(out.hls_master_url(), "");
  EXPECT_EQ(out.renditions(0).url(), "");
  EXPECT_EQ(out.renditions(0).name(), "720p");
}

}  // namespace
}  // namespace pettube::catalog
