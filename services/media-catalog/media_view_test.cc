// Rendering records for the API: every rendition, the poster and the HLS
// master get a signed URL the object server accepts, covering the item's
// prefix only, fresh on each render; a record prerendered once and stamped
// later answers exactly what rendering it then would.

#include "services/media-catalog/media_view.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/message_differencer.h"
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

// What Stamp writes, parsed.
v1::Media Stamped(const MediaView& view, const RenderedMedia& rendered) {
  std::string out(rendered.wire.size(), '\0');
  EXPECT_TRUE(view.Stamp(rendered, out.data()));
  v1::Media media;
  EXPECT_TRUE(media.ParseFromString(out));
  return media;
}

void ExpectSame(const v1::Media& want, const v1::Media& got) {
  std::string diff;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differ.Compare(want, got)) << diff;
}

TEST_F(MediaViewTest, AStampedRecordIsWhatRenderingItThenGives) {
  StoredMedia uploaded;
  uploaded.set_media_id("m2");
  auto decoded = DecodeEvent(t::Uploaded("m2", "bob", "dog"));
  ASSERT_TRUE(decoded.ok());
  MergeEvent(*decoded, &uploaded);
  StoredMedia unowned = ReadyRecord();
  unowned.clear_owner();  // nothing to sign for
  for (const StoredMedia& record : {ReadyRecord(), uploaded, unowned}) {
    const MediaView view = View();
    std::shared_ptr<const RenderedMedia> rendered = view.Prerender(record);
    ASSERT_NE(rendered, nullptr);
    EXPECT_EQ(rendered->owner, record.owner());
    EXPECT_EQ(rendered->listed, IsListed(record));
    // Later and at a fraction of a second: the URLs still expire on a whole second.
    for (absl::Duration later : {absl::Seconds(0), absl::Milliseconds(1500), absl::Hours(30)}) {
      now_ = absl::FromUnixSeconds(1800000000) + later;
      const v1::Media want = view.Render(record);
      const v1::Media got = Stamped(view, *rendered);
      ExpectSame(want, got);
      if (!record.owner().empty()) {
        EXPECT_TRUE(got.has_url_expire_time());
        EXPECT_EQ(got.url_expire_time().seconds(), absl::ToUnixSeconds(now_ + absl::Minutes(10)));
        EXPECT_EQ(got.url_expire_time().nanos(), 0);
      }
    }
  }
  // The ready record's URLs are signed by what Stamp wrote.
  const MediaView view = View();
  const v1::Media got = Stamped(view, *view.Prerender(ReadyRecord()));
  ASSERT_EQ(got.renditions_size(), 2);
  for (const std::string& url :
       {got.renditions(0).url(), got.renditions(0).hls_playlist_url(), got.renditions(1).url(),
        got.poster().url(), got.hls_master_url()}) {
    EXPECT_TRUE(VerifyUrl(*signer_, url, now_).ok()) << url;
    EXPECT_FALSE(VerifyUrl(*signer_, url, now_ + absl::Minutes(11)).ok()) << "expired " << url;
  }
}

TEST_F(MediaViewTest, WithoutASignerAStampedRecordIsItsRendering) {
  MediaView::Options options;
  options.objects_url = kBase;
  const MediaView view(nullptr, options);
  std::shared_ptr<const RenderedMedia> rendered = view.Prerender(ReadyRecord());
  ASSERT_NE(rendered, nullptr);
  EXPECT_TRUE(rendered->token_offsets.empty());
  EXPECT_TRUE(rendered->expiry_offsets.empty());
  ExpectSame(view.Render(ReadyRecord()), Stamped(view, *rendered));
}

TEST_F(MediaViewTest, ARecordHoldingTheReferenceTokenIsNotPrerendered) {
  // A title that holds the token Prerender signs with would be overwritten
  // by stamping: such a record is rendered on every read instead.
  StoredMedia m = ReadyRecord();
  m.set_title(signer_->Sign("renditions/alice/m1/", absl::FromUnixSeconds(1111111111)));
  EXPECT_EQ(View().Prerender(m), nullptr);
}

TEST_F(MediaViewTest, AnExpiryWithoutTenDigitsIsNotStamped) {
  const MediaView view = View();
  std::shared_ptr<const RenderedMedia> rendered = view.Prerender(ReadyRecord());
  ASSERT_NE(rendered, nullptr);
  std::string out(rendered->wire.size(), '\0');
  for (absl::Time when : {absl::UnixEpoch(), absl::FromUnixSeconds(9999999999)}) {
    now_ = when;
    EXPECT_FALSE(view.Stamp(*rendered, out.data())) << when;
  }
  now_ = absl::FromUnixSeconds(9999999999) - absl::Minutes(10);  // the last stampable second
  EXPECT_TRUE(view.Stamp(*rendered, out.data()));
}

}  // namespace
}  // namespace pettube::catalog
