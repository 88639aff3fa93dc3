// CatalogService in process on 127.0.0.1:0 over real gRPC and a real
// RocksDB store: authentication and scopes, signed URLs in responses,
// WatchMedia's push (current state, every change, end on delete and on
// drain), deletion through the publisher, backups. Each test runs twice:
// GetMedia rendering every read, and answering from rendered records.

#include "services/media-catalog/catalog_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/jwk.h"
#include "libs/auth/jwt.h"
#include "libs/testing/child_process.h"
#include "services/media-catalog/rocksdb_media_store.h"
#include "services/media-catalog/test_events.h"

namespace pettube::catalog {
namespace {

namespace t = ::pettube::catalog::testing;

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

// The parameter: whether GetMedia has a rendered cache.
class CatalogServiceTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    key_ = std::make_unique<auth::SigningKey>(*auth::SigningKey::Generate("k1"));
    auth::JwkSet set;
    ASSERT_TRUE(set.Add(*key_->ToPublicKey()).ok());
    authenticator_ = std::make_unique<auth::Authenticator>(
        auth::Authenticator::Options{}, [jwks = auth::ToJwksJson(set)]() { return jwks; });
    dir_ = pettube::testing::NewTempDir("service");
    RocksDbMediaStore::Options unsynced;
    unsynced.sync = false;
    if (GetParam()) {
      rendered_ = std::make_unique<RenderedCache>(1 << 20);
      unsynced.on_record_written = [this](absl::string_view id) { rendered_->Erase(id); };
    }
    auto store = RocksDbMediaStore::Open(dir_ + "/db", unsynced);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    auto catalog = Catalog::Create(
        store_.get(), &feed_,
        [this](io::cloudevents::v1::CloudEvent e, Catalog::DoneFn done) {
          published_ = e;
          // Like the real publisher: the broker's answer comes on another thread.
          std::thread([done = std::move(done)] { done(absl::OkStatus()); }).detach();
        },
        {});
    ASSERT_TRUE(catalog.ok());
    catalog_ = std::move(*catalog);
    auto ring = signed_url::KeyRing::Parse(signed_url::KeyRing::GenerateText("u1"));
    ASSERT_TRUE(ring.ok());
    signer_ = std::make_shared<signed_url::UrlSigner>(*ring);
    MediaView::Options view_options;
    view_options.objects_url = "http://objects:1";
    view_ = std::make_unique<MediaView>(signer_, view_options);
    CatalogService::Options service_options;
    service_options.backup_dir = dir_ + "/backups";
    service_options.rendered = rendered_.get();
    service_ = std::make_unique<CatalogService>(catalog_.get(), view_.get(), authenticator_.get(),
                                                service_options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub_ = v1::MediaCatalog::NewStub(channel_);
  }

  void TearDown() override {
    service_->Drain();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  std::string Token(const std::string& sub, const std::string& scope) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    nlohmann::json claims = {
        {"iss", "pettube-auth"}, {"aud", "pettube"}, {"sub", sub},    {"iat", now}, {"nbf", now},
        {"exp", now + 600},      {"jti", "j"},       {"scope", scope}};
    return *auth::SignCompact(claims, *key_);
  }

  void As(grpc::ClientContext& ctx, const std::string& sub,
          const std::string& scope = "media.read media.write") {
    ctx.AddMetadata("authorization", "Bearer " + Token(sub, scope));
    ctx.set_deadline(In(10));
  }

  void Apply(const io::cloudevents::v1::CloudEvent& e) { ASSERT_TRUE(catalog_->Apply(e).ok()); }

  grpc::Status Get(const std::string& sub, const std::string& name, v1::Media* out) {
    return Get(stub_.get(), sub, name, out);
  }
  grpc::Status Get(v1::MediaCatalog::Stub* stub, const std::string& sub, const std::string& name,
                   v1::Media* out) {
    grpc::ClientContext ctx;
    As(ctx, sub);
    v1::GetMediaRequest req;
    req.set_name(name);
    return stub->GetMedia(&ctx, req, out);
  }

  std::unique_ptr<auth::SigningKey> key_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::string dir_;
  std::unique_ptr<RenderedCache> rendered_;  // null without the parameter
  std::unique_ptr<RocksDbMediaStore> store_;
  ChangeFeed feed_;
  std::unique_ptr<Catalog> catalog_;
  std::shared_ptr<signed_url::UrlSigner> signer_;
  std::unique_ptr<MediaView> view_;
  std::unique_ptr<CatalogService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::MediaCatalog::Stub> stub_;
  io::cloudevents::v1::CloudEvent published_;
};

TEST_P(CatalogServiceTest, CallsNeedATokenWithTheRightScope) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  v1::Media m;
  grpc::ClientContext anonymous;
  v1::GetMediaRequest get;
  get.set_name("media/m1");
  EXPECT_EQ(stub_->GetMedia(&anonymous, get, &m).error_code(), grpc::UNAUTHENTICATED);
  grpc::ClientContext read_only;
  As(read_only, "alice", "media.read");
  v1::UpdateMediaRequest up;
  up.mutable_media()->set_name("media/m1");
  up.mutable_update_mask()->add_paths("title");
  grpc::Status s = stub_->UpdateMedia(&read_only, up, &m);
  EXPECT_EQ(s.error_code(), grpc::PERMISSION_DENIED);
  EXPECT_NE(s.error_message().find("media.write"), std::string::npos) << s.error_message();
  // The same token again (now a cached caller) is still checked for scope.
  const std::string token = Token("alice", "media.read");
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext again;
    again.AddMetadata("authorization", "Bearer " + token);
    EXPECT_EQ(stub_->UpdateMedia(&again, up, &m).error_code(), grpc::PERMISSION_DENIED);
    grpc::ClientContext read;
    read.AddMetadata("authorization", "Bearer " + token);
    EXPECT_TRUE(stub_->GetMedia(&read, get, &m).ok());
  }
  // A token that does not verify is refused every time (never cached).
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext forged;
    forged.AddMetadata("authorization", "Bearer " + token.substr(0, token.size() - 4) + "AAAA");
    EXPECT_EQ(stub_->GetMedia(&forged, get, &m).error_code(), grpc::UNAUTHENTICATED);
  }
  EXPECT_EQ(Get("bob", "media/m1", &m).error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(Get("alice", "nope", &m).error_code(), grpc::INVALID_ARGUMENT);
  ASSERT_TRUE(Get("alice", "media/m1", &m).ok());
  EXPECT_EQ(m.title(), "cat");
  EXPECT_EQ(m.state(), v1::UPLOADED);
}

TEST_P(CatalogServiceTest, ReadsBeyondTheQueuesBoundAreRefusedResourceExhausted) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  // m1 only in a table file, not cached: reading it needs the disk. m2 in
  // the memtable: read from memory, on gRPC's thread.
  ASSERT_TRUE(store_->CompactAll().ok());
  Apply(t::Uploaded("m2", "alice", "dog"));
  // One read thread, held busy, and room for one read waiting.
  concurrency::ThreadPool pool(1, /*max_queued=*/1);
  absl::Notification busy, release;
  pool.Schedule([&] {
    busy.Notify();
    release.WaitForNotification();
  });
  busy.WaitForNotification();
  CatalogService::Options options;
  options.read_pool = &pool;
  options.max_queued_reads = 1;
  CatalogService service(catalog_.get(), view_.get(), authenticator_.get(), options);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);
  auto stub = v1::MediaCatalog::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));

  // The queue's one place taken: every read that needs a read thread is
  // refused, none runs; one from memory is answered.
  absl::Notification filler_ran;
  pool.Schedule([&] { filler_ran.Notify(); });
  v1::Media m;
  const grpc::Status refused = Get(stub.get(), "alice", "media/m1", &m);
  EXPECT_EQ(refused.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("overloaded"), std::string::npos)
      << refused.error_message();
  ASSERT_TRUE(Get(stub.get(), "alice", "media/m2", &m).ok());
  EXPECT_EQ(m.title(), "dog");
  // Not found and not visible are told apart from memory too.
  EXPECT_EQ(Get(stub.get(), "bob", "media/m2", &m).error_code(), grpc::NOT_FOUND);
  grpc::ClientContext list_ctx;
  As(list_ctx, "alice");
  v1::ListMediaResponse page;
  EXPECT_EQ(stub->ListMedia(&list_ctx, v1::ListMediaRequest(), &page).error_code(),
            grpc::RESOURCE_EXHAUSTED);

  // Free again: reads are served.
  release.Notify();
  filler_ran.WaitForNotification();
  ASSERT_TRUE(Get(stub.get(), "alice", "media/m1", &m).ok());
  EXPECT_EQ(m.title(), "cat");
  server->Shutdown(In(5));
}

TEST_P(CatalogServiceTest, ResponsesCarrySignedUrlsTheObjectServerAccepts) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  Apply(t::Ready("m1", "alice"));
  v1::Media m;
  ASSERT_TRUE(Get("alice", "media/m1", &m).ok());
  ASSERT_EQ(m.renditions_size(), 1);
  const std::string url = m.renditions(0).url();
  ASSERT_TRUE(absl::StartsWith(url, "http://objects:1/o/")) << url;
  const std::string rest = url.substr(std::string("http://objects:1/o/").size());
  const size_t slash = rest.find('/');
  EXPECT_TRUE(signer_->Verify(rest.substr(0, slash), rest.substr(slash + 1), absl::Now()).ok());
  EXPECT_EQ(rest.substr(slash + 1), "renditions/alice/m1/360p.mp4");
  // List renders the same way.
  grpc::ClientContext ctx;
  As(ctx, "alice");
  v1::ListMediaResponse list;
  ASSERT_TRUE(stub_->ListMedia(&ctx, v1::ListMediaRequest(), &list).ok());
  ASSERT_EQ(list.media_size(), 1);
  EXPECT_FALSE(list.media(0).hls_master_url().empty());
}

TEST_P(CatalogServiceTest, WatchSendsTheCurrentStateThenEachChangeAndEndsOnDelete) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  grpc::ClientContext ctx;
  As(ctx, "alice");
  ctx.set_deadline(In(30));
  v1::WatchMediaRequest req;
  req.set_name("media/m1");
  auto stream = stub_->WatchMedia(&ctx, req);
  v1::Media m;
  ASSERT_TRUE(stream->Read(&m));
  EXPECT_EQ(m.state(), v1::UPLOADED);
  Apply(t::JobRequested("m1", "alice", "360p"));
  ASSERT_TRUE(stream->Read(&m));
  EXPECT_EQ(m.state(), v1::PROCESSING);
  Apply(t::Ready("m1", "alice"));
  ASSERT_TRUE(stream->Read(&m));
  EXPECT_EQ(m.state(), v1::READY);
  EXPECT_FALSE(m.renditions(0).url().empty());
  grpc::ClientContext del_ctx;
  As(del_ctx, "alice");
  v1::DeleteMediaRequest del;
  del.set_name("media/m1");
  google::protobuf::Empty empty;
  ASSERT_TRUE(stub_->DeleteMedia(&del_ctx, del, &empty).ok());
  EXPECT_EQ(published_.type(), "pettube.media.deleted");
  ASSERT_TRUE(stream->Read(&m));
  EXPECT_EQ(m.state(), v1::DELETED);
  EXPECT_FALSE(stream->Read(&m));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(Get("alice", "media/m1", &m).error_code(), grpc::NOT_FOUND);
}

TEST_P(CatalogServiceTest, WatchingAllMyMediaSeesNewItemsButNotOthersAndEndsOnDrain) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  grpc::ClientContext ctx;
  As(ctx, "alice");
  ctx.set_deadline(In(30));
  auto stream = stub_->WatchMedia(&ctx, v1::WatchMediaRequest());
  v1::Media m;
  ASSERT_TRUE(stream->Read(&m));
  EXPECT_EQ(m.name(), "media/m1");
  Apply(t::Uploaded("b1", "bob", "bird"));
  Apply(t::Uploaded("m2", "alice", "dog"));
  ASSERT_TRUE(stream->Read(&m));
  EXPECT_EQ(m.name(), "media/m2");  // bob's never shows
  service_->Drain();
  EXPECT_FALSE(stream->Read(&m));
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::UNAVAILABLE);
  EXPECT_NE(s.error_message().find("reconnect"), std::string::npos);
}

TEST_P(CatalogServiceTest, WatchRefusesBadNamesAndOthersPrivateMedia) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  for (const char* name : {"media/m1", "media/../x", "media/none"}) {
    grpc::ClientContext ctx;
    As(ctx, "bob");
    v1::WatchMediaRequest req;
    req.set_name(name);
    auto stream = stub_->WatchMedia(&ctx, req);
    v1::Media m;
    EXPECT_FALSE(stream->Read(&m));
    const grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(),
              std::string(name) == "media/../x" ? grpc::INVALID_ARGUMENT : grpc::NOT_FOUND)
        << name << ": " << s.error_message();
  }
}

TEST_P(CatalogServiceTest, AnOperatorBackupIsAStoreWithTheSameRecords) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  Apply(t::Uploaded("m2", "bob", "dog"));
  v1::Backup backup;
  grpc::ClientContext person;
  As(person, "alice");
  EXPECT_EQ(stub_->CreateBackup(&person, v1::CreateBackupRequest(), &backup).error_code(),
            grpc::PERMISSION_DENIED);
  grpc::ClientContext ops;
  As(ops, "ops", "media.read media.admin");
  const grpc::Status s = stub_->CreateBackup(&ops, v1::CreateBackupRequest(), &backup);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(backup.media_count(), 2);
  auto restored = RocksDbMediaStore::Open(backup.path(), {});
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->Get("m2")->title(), "dog");
}

TEST_P(CatalogServiceTest, EveryWriteIsSeenByTheNextGet) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  v1::Media m;
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(Get("alice", "media/m1", &m).ok());  // now held
  EXPECT_EQ(m.state(), v1::UPLOADED);
  if (GetParam()) {
    EXPECT_GT(rendered_->bytes(), 0u);
  }
  Apply(t::JobCompleted("m1", "alice", "720p"));
  ASSERT_TRUE(Get("alice", "media/m1", &m).ok());
  ASSERT_EQ(m.renditions_size(), 1);
  EXPECT_EQ(m.renditions(0).name(), "720p");
  // An update through the API, then the next read.
  grpc::ClientContext ctx;
  As(ctx, "alice");
  v1::UpdateMediaRequest up;
  up.mutable_media()->set_name("media/m1");
  up.mutable_media()->set_title("kitten");
  up.mutable_update_mask()->add_paths("title");
  v1::Media updated;
  ASSERT_TRUE(stub_->UpdateMedia(&ctx, up, &updated).ok());
  ASSERT_TRUE(Get("alice", "media/m1", &m).ok());
  EXPECT_EQ(m.title(), "kitten");
  EXPECT_EQ(m.etag(), updated.etag());
  // A deletion: the held rendering never answers again.
  grpc::ClientContext del;
  As(del, "alice");
  v1::DeleteMediaRequest remove;
  remove.set_name("media/m1");
  google::protobuf::Empty empty;
  ASSERT_TRUE(stub_->DeleteMedia(&del, remove, &empty).ok());
  EXPECT_EQ(Get("alice", "media/m1", &m).error_code(), grpc::NOT_FOUND);
}

TEST_P(CatalogServiceTest, OthersPrivateMediaStaysNotFoundOnceHeld) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  v1::Media m;
  ASSERT_TRUE(Get("alice", "media/m1", &m).ok());  // alice's read holds it
  grpc::Status s = Get("bob", "media/m1", &m);
  EXPECT_EQ(s.error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "name: no media \"media/m1\"");  // as for an absent id
  EXPECT_EQ(Get("bob", "media/nope", &m).error_message(), "name: no media \"media/nope\"");
  for (v1::Visibility visibility : {v1::UNLISTED, v1::PUBLIC, v1::PRIVATE}) {
    grpc::ClientContext ctx;
    As(ctx, "alice");
    v1::UpdateMediaRequest up;
    up.mutable_media()->set_name("media/m1");
    up.mutable_media()->set_visibility(visibility);
    up.mutable_update_mask()->add_paths("visibility");
    v1::Media updated;
    ASSERT_TRUE(stub_->UpdateMedia(&ctx, up, &updated).ok());
    ASSERT_TRUE(Get("alice", "media/m1", &m).ok());
    EXPECT_EQ(Get("bob", "media/m1", &m).error_code(),
              visibility == v1::PRIVATE ? grpc::NOT_FOUND : grpc::OK)
        << v1::Visibility_Name(visibility);
  }
  // An operator reads everything.
  grpc::ClientContext ctx;
  As(ctx, "carol", "media.read media.admin");
  v1::GetMediaRequest get;
  get.set_name("media/m1");
  EXPECT_TRUE(stub_->GetMedia(&ctx, get, &m).ok());
}

TEST_P(CatalogServiceTest, AGetMediaRequestThatDoesNotParseIsInvalidArgument) {
  Apply(t::Uploaded("m1", "alice", "cat"));
  grpc::GenericStub generic(channel_);
  for (const std::string& bytes : {std::string("\x0a\xff\xff", 3), std::string("\xff", 1)}) {
    grpc::ClientContext ctx;
    As(ctx, "alice");
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    absl::Notification done;
    grpc::Status status;
    generic.UnaryCall(&ctx, "/pettube.catalog.v1.MediaCatalog/GetMedia", grpc::StubOptions(),
                      &request, &response, [&](grpc::Status s) {
                        status = std::move(s);
                        done.Notify();
                      });
    done.WaitForNotification();
    EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT) << status.error_message();
  }
  v1::Media m;
  EXPECT_EQ(Get("alice", "m1", &m).error_code(), grpc::INVALID_ARGUMENT);  // not "media/..."
  EXPECT_TRUE(Get("alice", "media/m1", &m).ok());
}

INSTANTIATE_TEST_SUITE_P(RenderingEachRead, CatalogServiceTest, ::testing::Values(false));
INSTANTIATE_TEST_SUITE_P(FromRenderedRecords, CatalogServiceTest, ::testing::Values(true));

}  // namespace
}  // namespace pettube::catalog
