#include "libs/signed_url/url_signer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace pettube::signed_url {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

UrlSigner MakeSigner(const std::string& text) {
  auto ring = KeyRing::Parse(text);
  EXPECT_TRUE(ring.ok()) << ring.status();
  return UrlSigner(*std::move(ring));
}

TEST(UrlSignerTest, TokenCoversEveryObjectUnderItsPrefixUntilExpiry) {
  UrlSigner signer = MakeSigner(KeyRing::GenerateText("k1"));
  const std::string token = signer.Sign("renditions/u1/m1/", kNow + absl::Hours(1));
  EXPECT_TRUE(signer.Verify(token, "renditions/u1/m1/hls/master.m3u8", kNow).ok());
  EXPECT_TRUE(signer.Verify(token, "renditions/u1/m1/720p.mp4", kNow).ok());
  EXPECT_EQ(signer.Verify(token, "renditions/u1/m10/720p.mp4", kNow).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(signer.Verify(token, "originals/u1/m1/source", kNow).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(signer.Verify(token, "renditions/u1/m1/720p.mp4", kNow + absl::Hours(1)).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(UrlSignerTest, PrefixWithoutSlashCoversOnlyThatObject) {
  UrlSigner signer = MakeSigner(KeyRing::GenerateText("k1"));
  const std::string token = signer.Sign("originals/u1/m1/source", kNow + absl::Minutes(5));
  EXPECT_TRUE(signer.Verify(token, "originals/u1/m1/source", kNow).ok());
  EXPECT_FALSE(signer.Verify(token, "originals/u1/m1/source2", kNow).ok());
}

TEST(UrlSignerTest, TamperedTokensAreRefused) {
  UrlSigner signer = MakeSigner(KeyRing::GenerateText("k1"));
  const std::string token = signer.Sign("renditions/u1/m1/", kNow + absl::Hours(1));
  std::vector<std::string> parts = absl::StrSplit(token, '.');
  ASSERT_EQ(parts.size(), 5u);
  // A later expiry, another prefix, a flipped MAC byte: each refused.
  std::vector<std::string> forged = {
      absl::StrCat(parts[0], ".", parts[1], ".", absl::ToUnixSeconds(kNow + absl::Hours(99)), ".",
                   parts[3], ".", parts[4]),
      absl::StrCat(parts[0], ".", parts[1], ".", parts[2], ".", "cmVuZGl0aW9ucy8", ".", parts[4]),
  };
  // The MAC's first character: all six of its bits are MAC bits (the last
  // one's low bits are padding, which a strict decoder refuses as malformed).
  std::string flipped = token;
  char& mac_char = flipped[flipped.size() - parts[4].size()];
  mac_char = mac_char == 'A' ? 'B' : 'A';
  forged.push_back(flipped);
  for (const std::string& f : forged) {
    absl::Status s = signer.Verify(f, "renditions/u1/m1/720p.mp4", kNow);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << f << " " << s;
  }
  for (const char* junk : {"", "v1", "v2.k1.1.a.b", "v1.k1.x.a.b", "v1.k1.1.!!.b"}) {
    EXPECT_EQ(signer.Verify(junk, "renditions/u1/m1/720p.mp4", kNow).code(),
              absl::StatusCode::kInvalidArgument)
        << junk;
  }
}

TEST(UrlSignerTest, AnotherKeyRingCannotVerify) {
  UrlSigner a = MakeSigner(KeyRing::GenerateText("k1"));
  UrlSigner b = MakeSigner(KeyRing::GenerateText("k1"));
  const std::string token = a.Sign("renditions/", kNow + absl::Hours(1));
  EXPECT_EQ(b.Verify(token, "renditions/x", kNow).code(), absl::StatusCode::kPermissionDenied);
}

TEST(UrlSignerTest, RotationKeepsOldTokensValidWhileTheOldKeyIsListed) {
  const std::string old_key = KeyRing::GenerateText("old");
  const std::string new_key = KeyRing::GenerateText("new");
  UrlSigner before = MakeSigner(old_key);
  UrlSigner after = MakeSigner(new_key + old_key);
  const std::string old_token = before.Sign("renditions/", kNow + absl::Hours(1));
  EXPECT_TRUE(after.Verify(old_token, "renditions/x", kNow).ok());
  const std::string new_token = after.Sign("renditions/", kNow + absl::Hours(1));
  EXPECT_NE(new_token.find(".new."), std::string::npos);
  EXPECT_EQ(MakeSigner(new_key).Verify(old_token, "renditions/x", kNow).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(KeyRingTest, MalformedFilesAreRefusedWithTheLine) {
  EXPECT_EQ(KeyRing::Parse("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeyRing::Parse("# only a comment\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto short_secret = KeyRing::Parse("k1 c2hvcnQ=\n");
  EXPECT_NE(short_secret.status().message().find("line 1"), std::string::npos);
  auto repeated = KeyRing::Parse(KeyRing::GenerateText("k1") + KeyRing::GenerateText("k1"));
  EXPECT_NE(repeated.status().message().find("repeated"), std::string::npos);
  EXPECT_FALSE(KeyRing::Parse("bad/id " + std::string(44, 'A') + "\n").ok());
  EXPECT_FALSE(KeyRing::Parse("k1 not*base64\n").ok());
}

}  // namespace
}  // namespace pettube::signed_url
