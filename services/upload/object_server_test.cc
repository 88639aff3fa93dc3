#include "services/upload/object_server.h"

#include <string>

#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "services/upload/fs_blob_store.h"
#include "services/upload/rocksdb_upload_store.h"
#include "services/upload/sha256_state.h"
#include "services/upload/upload_probe.h"

namespace pettube::upload {
namespace {

TEST(ParseRangeTest, SingleRangesAndSuffixes) {
  auto r = ParseRange("bytes=0-99", 1000);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->first, 0);
  EXPECT_EQ((*r)->last, 99);
  r = ParseRange("bytes=900-", 1000);
  EXPECT_EQ((*r)->last, 999);
  r = ParseRange("bytes=-10", 1000);
  EXPECT_EQ((*r)->first, 990);
  r = ParseRange("bytes=990-5000", 1000);
  EXPECT_EQ((*r)->last, 999) << "clamped to the end";
  EXPECT_EQ(ParseRange("bytes=1000-", 1000).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ParseRange("bytes=-0", 1000).status().code(), absl::StatusCode::kOutOfRange);
  // Not usable: served whole.
  for (const char* h : {"items=0-1", "bytes=5-1", "bytes=0-1,5-6", "bytes=x-y", "bytes="}) {
    auto whole = ParseRange(h, 1000);
    ASSERT_TRUE(whole.ok()) << h;
    EXPECT_FALSE(whole->has_value()) << h;
  }
}

class ObjectServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = testing::NewTempDir("objects");
    store_ = *RocksDbUploadStore::Open(dir + "/db");
    blobs_ = *FsBlobStore::Open(dir + "/blobs");
    Uploads::Options options;
    options.run_expiry_timer = false;
    options.probe = nullptr;
    uploads_ = std::make_unique<Uploads>(store_.get(), blobs_.get(), options,
                                         [](const OutboxEntry&) {});
    signer_ = std::make_unique<signed_url::UrlSigner>(
        *signed_url::KeyRing::Parse(signed_url::KeyRing::GenerateText("k1")));
    probe_ = std::make_unique<UploadProbe>(registry_);
    server_ = std::make_unique<ObjectServer>(uploads_.get(), signer_.get(), nullptr, probe_.get());

    content_ = std::string("\0\0\0\x20" "ftypisom", 12) + std::string(3000, 'v');
    auth::Caller alice;
    alice.identity = "alice";
    alice.scopes = {"media.upload"};
    v1::CreateUploadRequest req;
    req.set_title("t");
    auto session = uploads_->Create(alice, req);
    ASSERT_TRUE(session.ok());
    auto writer = uploads_->BeginWrite(alice, session->name());
    v1::WriteRequest chunk;
    chunk.set_data(content_);
    chunk.set_finish_write(true);
    Sha256State sha;
    sha.Update(content_);
    chunk.set_sha256(sha.HexDigest());
    ASSERT_TRUE((*writer)->Write(chunk).ok());
    key_ = session->key();
    sha_ = sha.HexDigest();
  }

  // Runs the handler and its streamed body, as the HTTP server would.
  http::Response Get(const std::string& path, std::map<std::string, std::string> headers = {},
                     const std::string& method = "GET") {
    http::Request request;
    request.method = method;
    request.path = path;
    request.headers = std::move(headers);
    http::Response r = server_->ServeSigned(request);
    if (r.stream_body && method == "GET") {
      r.stream_body([&r](absl::string_view data) {
        r.body.append(data.data(), data.size());
        return true;
      });
      EXPECT_EQ(static_cast<int64_t>(r.body.size()), r.stream_length);
    }
    return r;
  }

  std::string Header(const http::Response& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) {
      if (n == name) return v;
    }
    return "";
  }

  std::string SignedPath(const std::string& prefix, absl::Duration ttl = absl::Hours(1)) {
    return signer_->SignedPath("originals/" + key_, prefix, absl::Now() + ttl);
  }

  std::unique_ptr<RocksDbUploadStore> store_;
  std::unique_ptr<FsBlobStore> blobs_;
  std::unique_ptr<Uploads> uploads_;
  std::unique_ptr<signed_url::UrlSigner> signer_;
  metrics::Registry registry_;
  std::unique_ptr<UploadProbe> probe_;
  std::unique_ptr<ObjectServer> server_;
  std::string content_, key_, sha_;
};

TEST_F(ObjectServerTest, SignedUrlServesTheWholeObjectWithItsHeaders) {
  http::Response r = Get(SignedPath("originals/alice/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, content_);
  EXPECT_EQ(r.content_type, "video/mp4");
  EXPECT_EQ(Header(r, "ETag"), "\"" + sha_ + "\"");
  EXPECT_EQ(Header(r, "Accept-Ranges"), "bytes");
  http::Response head = Get(SignedPath("originals/alice/"), {}, "HEAD");
  EXPECT_EQ(head.stream_length, static_cast<int64_t>(content_.size()));
  EXPECT_EQ(Get(SignedPath("originals/alice/"), {}, "POST").status, 405);
}

TEST_F(ObjectServerTest, RangesAreServedAs206AndUnsatisfiableAs416) {
  http::Response r = Get(SignedPath("originals/alice/"), {{"range", "bytes=4-11"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, "ftypisom");
  EXPECT_EQ(Header(r, "Content-Range"), "bytes 4-11/3012");
  http::Response bad = Get(SignedPath("originals/alice/"), {{"range", "bytes=5000-"}});
  EXPECT_EQ(bad.status, 416);
  EXPECT_EQ(Header(bad, "Content-Range"), "bytes */3012");
}

TEST_F(ObjectServerTest, MatchingEtagIsNotModified) {
  http::Response r = Get(SignedPath("originals/alice/"), {{"if-none-match", "\"" + sha_ + "\""}});
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(Get(SignedPath("originals/alice/"), {{"if-none-match", "\"other\""}}).status, 200);
}

TEST_F(ObjectServerTest, ExpiredTamperedAndWrongPrefixUrlsAre403) {
  EXPECT_EQ(Get(SignedPath("originals/alice/", -absl::Seconds(1))).status, 403);
  EXPECT_EQ(Get(SignedPath("originals/bob/")).status, 403);
  std::string tampered = SignedPath("originals/alice/");
  tampered[10] = tampered[10] == 'k' ? 'j' : 'k';
  EXPECT_EQ(Get(tampered).status, 403);
  // The token of one prefix on another object.
  const std::string token = signer_->Sign("renditions/alice/", absl::Now() + absl::Hours(1));
  EXPECT_EQ(Get("/o/" + token + "/originals/" + key_).status, 403);
}

TEST_F(ObjectServerTest, MalformedAndTraversingPathsAre400AndMissingObjects404) {
  const std::string token = signer_->Sign("originals/", absl::Now() + absl::Hours(1));
  for (const std::string& path :
       {"/o/" + token, "/o/" + token + "/originals", "/o/" + token + "/etc/passwd",
        "/o/" + token + "/originals/alice/../../x", "/o/" + token + "/originals//x",
        "/o/" + token + "/originals/a%2e%2e/x"}) {
    EXPECT_EQ(Get(path).status, 400) << path;
  }
  EXPECT_EQ(Get("/o/" + token + "/originals/alice/nope/source").status, 404);
}

TEST_F(ObjectServerTest, RequestsAreCountedByStatusOnTheRoutes) {
  const auto routes = server_->Routes();
  http::Request request;
  request.method = "GET";
  request.path = SignedPath("originals/alice/");
  EXPECT_EQ(routes[0].second(request).status, 200);
  request.path = SignedPath("originals/bob/");
  EXPECT_EQ(routes[0].second(request).status, 403);
  const std::string text = registry_.Serialize();
  EXPECT_NE(text.find("pettube_object_requests_total{code=\"200\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("pettube_object_requests_total{code=\"403\"} 1"), std::string::npos);
  EXPECT_NE(text.find("pettube_object_bytes_served_total 3012"), std::string::npos);
}

TEST_F(ObjectServerTest, BearerRouteWithoutATokenIs401) {
  http::Request request;
  request.method = "GET";
  request.path = "/objects/originals/" + key_;
  http::Response r = server_->ServeBearer(request);
  EXPECT_EQ(r.status, 401);
}

}  // namespace
}  // namespace pettube::upload
