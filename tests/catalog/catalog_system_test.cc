// The media catalog as a real process between a real broker and
// auth-token-exchange: events in, records out, exactly once across SIGKILLs,
// a malformed event dead-lettered with its reason, signed URLs, WatchMedia
// surviving a restart by reconnecting.

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "libs/auth/credentials/token_source.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/publisher.h"
#include "libs/signed_url/url_signer.h"
#include "libs/testing/child_process.h"
#include "libs/testing/dev_sign_in.h"
#include "libs/testing/http_get.h"
#include "libs/testing/service_process.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "proto/pettube/catalog/v1/catalog.grpc.pb.h"
#include "services/media-catalog/test_events.h"

namespace pettube {
namespace {

namespace t = ::pettube::catalog::testing;
using ::pettube::catalog::v1::Media;
using ::pettube::testing::ChildProcess;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::RunfilePath;

constexpr char kSubscription[] = "subscriptions/media-catalog";

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

struct Running {
  std::unique_ptr<::pettube::testing::ServiceProcess> service;
  ChildProcess* process = nullptr;
  std::string grpc;
  std::string metrics;
};

// Starts a service through libs/testing's ServiceProcess (ready line, ports).
Running Start(const std::string& binary, const std::string& dir, std::vector<std::string> args,
              const std::string& listen = "127.0.0.1:0") {
  static int n = 0;
  ::pettube::testing::ServiceProcess::Options options;
  options.binary = ::pettube::testing::ServiceBinary(binary);
  options.listen = listen;
  options.data_dir = dir + "/data";
  options.args = std::move(args);
  options.stderr_path = absl::StrCat(dir, "/stderr.", ++n, ".log");
  Running r;
  auto started = ::pettube::testing::ServiceProcess::Start(std::move(options));
  EXPECT_TRUE(started.ok()) << binary << ": " << started.status();
  if (!started.ok()) return r;
  r.service = std::move(*started);
  r.process = &r.service->process();
  r.grpc = r.service->grpc();
  r.metrics = r.service->metrics();
  return r;
}

class CatalogSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = NewTempDir("config");
    for (const char* client : {"media-catalog", "tester", "ops"}) {
      std::ofstream(absl::StrCat(config_, "/", client, ".secret"))
          << client << "-secret-0123456789abcdef\n";
    }
    std::ofstream(config_ + "/clients.json") << absl::StrCat(
        R"([{"client_id": "media-catalog", "secret_file": ")", config_,
        R"(/media-catalog.secret", "scopes": ["events.subscribe", "events.publish"]},
            {"client_id": "tester", "secret_file": ")",
        config_,
        R"(/tester.secret", "scopes": ["events.subscribe", "events.publish", "events.admin"]},
            {"client_id": "ops", "secret_file": ")",
        config_, R"(/ops.secret", "scopes": ["media.read", "media.admin"]}])");
    std::ofstream(config_ + "/url_keys") << signed_url::KeyRing::GenerateText("k1");
    auth_ =
        Start("auth-token-exchange", NewTempDir("auth"),
              {"--dev_idp", absl::StrCat("--workload_clients_file=", config_, "/clients.json")});
    auth_channel_ = grpc::CreateChannel(auth_.grpc, grpc::InsecureChannelCredentials());
    broker_ =
        Start("broker", NewTempDir("broker"), {"--auth_server=" + auth_.grpc, "--sync=false"});
    broker_channel_ = grpc::CreateChannel(broker_.grpc, grpc::InsecureChannelCredentials());
    broker_stub_ = broker::v1::Broker::NewStub(broker_channel_);
    tester_ = std::make_shared<auth::WorkloadTokenSource>(
        auth_channel_, "tester", "tester-secret-0123456789abcdef",
        std::vector<std::string>{"events.publish", "events.subscribe", "events.admin"});
    ops_ = std::make_shared<auth::WorkloadTokenSource>(
        auth_channel_, "ops", "ops-secret-0123456789abcdef",
        std::vector<std::string>{"media.read", "media.admin"});
    broker_client::Publisher::Options po;
    po.configure_context = [tokens = tester_](grpc::ClientContext& ctx) {
      (void)tokens->Attach(ctx);
    };
    publisher_ = std::make_unique<broker_client::Publisher>(broker_channel_, po);
    catalog_dir_ = NewTempDir("catalog");
  }

  void TearDown() override { publisher_->Shutdown(absl::Seconds(2)); }

  void StartCatalog(const std::string& listen = "127.0.0.1:0",
                    std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--auth_server=" + auth_.grpc,
        "--broker_server=" + broker_.grpc,
        "--client_id=media-catalog",
        absl::StrCat("--client_secret_file=", config_, "/media-catalog.secret"),
        absl::StrCat("--url_signing_keys_file=", config_, "/url_keys"),
        "--objects_url=http://127.0.0.1:1",
        "--max_delivery_attempts=1",
    };
    args.insert(args.end(), extra.begin(), extra.end());
    catalog_ = Start("media-catalog", catalog_dir_, args, listen);
    catalog_channel_ = grpc::CreateChannel(catalog_.grpc, grpc::InsecureChannelCredentials());
    stub_ = catalog::v1::MediaCatalog::NewStub(catalog_channel_);
  }

  // A person's sign-in through the dev IdP; returns {identity id, token}.
  std::pair<std::string, std::string> SignIn(const std::string& user) {
    auto signed_in = ::pettube::testing::DevSignIn(auth_channel_, user);
    EXPECT_TRUE(signed_in.ok()) << signed_in.status();
    if (!signed_in.ok()) return {};
    return {::pettube::testing::IdentityId(*signed_in), signed_in->access_token()};
  }

  void Publish(io::cloudevents::v1::CloudEvent e) {
    auto r = publisher_->PublishAndWait(std::move(e), absl::Seconds(10));
    ASSERT_TRUE(r.ok()) << r.status();
  }

  std::unique_ptr<grpc::ClientContext> As(const std::string& token, int seconds = 10) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token);
    ctx->set_deadline(In(seconds));
    return ctx;
  }

  // Stats of the catalog's subscription, pushed by the broker, until `done`
  // holds (or the deadline). Returns the last stats seen.
  broker::v1::SubscriptionStats WaitForStats(
      const std::function<bool(const broker::v1::SubscriptionStats&)>& done, int seconds = 60) {
    grpc::ClientContext ctx;
    (void)tester_->Attach(ctx);
    ctx.set_deadline(In(seconds));
    broker::v1::WatchSubscriptionStatsRequest req;
    req.set_name(kSubscription);
    req.mutable_min_interval()->set_nanos(10'000'000);
    auto stream = broker_stub_->WatchSubscriptionStats(&ctx, req);
    broker::v1::SubscriptionStats stats;
    while (stream->Read(&stats)) {
      if (done(stats)) {
        ctx.TryCancel();
        break;
      }
    }
    (void)stream->Finish();
    return stats;
  }

  std::string config_;
  Running auth_, broker_, catalog_;
  std::shared_ptr<grpc::Channel> auth_channel_, broker_channel_, catalog_channel_;
  std::unique_ptr<broker::v1::Broker::Stub> broker_stub_;
  std::shared_ptr<auth::WorkloadTokenSource> tester_, ops_;
  std::unique_ptr<broker_client::Publisher> publisher_;
  std::string catalog_dir_;
  std::unique_ptr<catalog::v1::MediaCatalog::Stub> stub_;
};

TEST_F(CatalogSystemTest, EventsBecomeRecordsWithSignedUrlsAndABadEventIsDeadLettered) {
  StartCatalog();
  const auto [alice, token] = SignIn("alice");
  // Watch all of alice's media before anything exists.
  auto watch_ctx = As(token, 60);
  auto watch = stub_->WatchMedia(watch_ctx.get(), catalog::v1::WatchMediaRequest());

  Publish(t::Uploaded("m1", alice, "my cat"));
  Publish(t::JobRequested("m1", alice, "360p"));
  Publish(t::JobCompleted("m1", alice, "360p"));
  Publish(t::Ready("m1", alice));
  Media m;
  uint64_t last_version = 0;
  do {
    ASSERT_TRUE(watch->Read(&m)) << "watch ended early";
    EXPECT_EQ(m.name(), "media/m1");
    uint64_t version = 0;
    ASSERT_TRUE(absl::SimpleAtoi(m.etag().substr(1), &version)) << m.etag();
    EXPECT_GT(version, last_version);  // every message is a newer state
    last_version = version;
  } while (m.state() != catalog::v1::READY);

  // GetMedia: a signed URL the object server's signer accepts.
  {
    auto ctx = As(token);
    catalog::v1::GetMediaRequest req;
    req.set_name("media/m1");
    ASSERT_TRUE(stub_->GetMedia(ctx.get(), req, &m).ok());
    ASSERT_EQ(m.renditions_size(), 1);
    const std::string url = m.renditions(0).url();
    ASSERT_TRUE(absl::StartsWith(url, "http://127.0.0.1:1/o/")) << url;
    std::ifstream keys_file(config_ + "/url_keys");
    std::string keys((std::istreambuf_iterator<char>(keys_file)), std::istreambuf_iterator<char>());
    signed_url::UrlSigner signer(*signed_url::KeyRing::Parse(keys));
    const std::string rest = url.substr(std::string("http://127.0.0.1:1/o/").size());
    const size_t slash = rest.find('/');
    EXPECT_TRUE(signer.Verify(rest.substr(0, slash), rest.substr(slash + 1), absl::Now()).ok());
    EXPECT_EQ(rest.substr(slash + 1), absl::StrCat("renditions/", alice, "/m1/360p.mp4"));
  }

  // A malformed payload is nacked with the reason and dead-lettered
  // (--max_delivery_attempts=1); the media published after it is projected.
  auto bad = t::Uploaded("bad1", alice, "x");
  bad.mutable_proto_data()->set_value("\x0a\xff\xff");
  Publish(bad);
  Publish(t::Uploaded("m2", alice, "my dog"));
  ASSERT_TRUE(watch->Read(&m));
  EXPECT_EQ(m.name(), "media/m2");
  WaitForStats([](const auto& s) { return s.dead_letter_count() >= 1; });
  {
    grpc::ClientContext ctx;
    (void)tester_->Attach(ctx);
    ctx.set_deadline(In(10));
    broker::v1::ListDeadLettersRequest req;
    req.set_subscription(kSubscription);
    broker::v1::ListDeadLettersResponse resp;
    ASSERT_TRUE(broker_stub_->ListDeadLetters(&ctx, req, &resp).ok());
    ASSERT_EQ(resp.dead_letters_size(), 1);
    EXPECT_EQ(resp.dead_letters(0).event().id(), bad.id());
    EXPECT_NE(resp.dead_letters(0).last_error().find("event.data"), std::string::npos)
        << resp.dead_letters(0).last_error();
  }

  // Another person sees nothing of alice's private media; an operator does.
  const auto [bob, bob_token] = SignIn("bob");
  {
    auto ctx = As(bob_token);
    catalog::v1::GetMediaRequest req;
    req.set_name("media/m1");
    EXPECT_EQ(stub_->GetMedia(ctx.get(), req, &m).error_code(), grpc::NOT_FOUND);
    grpc::ClientContext ops;
    ASSERT_TRUE(ops_->Attach(ops).ok());
    catalog::v1::ListMediaRequest list;
    list.set_owner("all");
    catalog::v1::ListMediaResponse resp;
    ASSERT_TRUE(stub_->ListMedia(&ops, list, &resp).ok());
    EXPECT_EQ(resp.media_size(), 2);
  }

  // Delete: pettube.media.deleted goes through the broker, the watch sees it.
  {
    auto ctx = As(token);
    catalog::v1::DeleteMediaRequest req;
    req.set_name("media/m1");
    google::protobuf::Empty empty;
    const grpc::Status s = stub_->DeleteMedia(ctx.get(), req, &empty);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_TRUE(watch->Read(&m));
    EXPECT_EQ(m.name(), "media/m1");
    EXPECT_EQ(m.state(), catalog::v1::DELETED);
    auto get = As(token);
    catalog::v1::GetMediaRequest g;
    g.set_name("media/m1");
    EXPECT_EQ(stub_->GetMedia(get.get(), g, &m).error_code(), grpc::NOT_FOUND);
  }
  // Our own deletion event comes back through the subscription and is
  // already applied: everything acked, nothing else dead-lettered.
  // Acked: m1's four events, m2's upload and the deletion.
  auto stats = WaitForStats(
      [](const auto& s) { return s.backlog() == 0 && s.in_flight() == 0 && s.acked() >= 6; });
  EXPECT_EQ(stats.backlog(), 0);
  EXPECT_EQ(stats.dead_letter_count(), 1);

  catalog_.process->Signal(SIGTERM);
  EXPECT_FALSE(watch->Read(&m));
  const grpc::Status end = watch->Finish();
  EXPECT_EQ(end.error_code(), grpc::UNAVAILABLE) << end.error_message();
  EXPECT_EQ(*catalog_.process->WaitForExit(absl::Seconds(20)), 0);
}

TEST_F(CatalogSystemTest, SigkillMidStreamThreeTimesStillAppliesEveryEventExactlyOnce) {
  // A kill returns the in-flight deliveries to the broker, which counts
  // them as attempts: allow more than the three kills. With a row cache,
  // a record cache and a rendered cache warmed at each start, mid-stream:
  // the projection's version checks, the listing and GetMedia read
  // through them, so a stale cached record would show in the etags.
  const std::vector<std::string> flags = {"--handler_concurrency=4", "--max_delivery_attempts=10",
                                          "--row_cache_mb=4",        "--record_cache_mb=4",
                                          "--rendered_cache_mb=4",   "--warm_row_cache"};
  StartCatalog("127.0.0.1:0", flags);
  const auto [alice, token] = SignIn("alice");
  // Every event of this stream adds a fact no other event adds (its own
  // job), so in any order each one applied once raises the version by one:
  // version == events for the item proves none was lost or applied twice.
  constexpr int kMedia = 40;
  constexpr int kJobsPerMedia = 9;
  constexpr int kEvents = kMedia * (1 + kJobsPerMedia);
  int accepted = 0;
  absl::Mutex mu;
  for (int i = 0; i < kMedia; ++i) {
    const std::string id = absl::StrCat("k", i);
    std::vector<io::cloudevents::v1::CloudEvent> events = {t::Uploaded(id, alice, "clip")};
    for (int j = 0; j < kJobsPerMedia; ++j) {
      events.push_back(t::JobProgressed(id, absl::StrCat("r", j), 0.1 * (j + 1)));
    }
    for (auto& e : events) {
      publisher_->PublishAsync(std::move(e), [&](absl::StatusOr<broker_client::PublishResult> r) {
        EXPECT_TRUE(r.ok()) << r.status();
        absl::MutexLock lock(&mu);
        ++accepted;
      });
    }
  }
  ASSERT_TRUE(publisher_->Flush(absl::Seconds(30)).ok());
  EXPECT_EQ(accepted, kEvents);

  int mid_stream_kills = 0;
  for (int kill = 1; kill <= 3; ++kill) {
    const int threshold = kill * kEvents / 4;
    auto stats = WaitForStats([&](const auto& s) { return s.acked() >= threshold; });
    if (stats.backlog() > 0) ++mid_stream_kills;
    catalog_.process->Signal(SIGKILL);
    EXPECT_EQ(*catalog_.process->WaitForExit(absl::Seconds(10)), 128 + SIGKILL);
    StartCatalog("127.0.0.1:0", flags);
  }
  EXPECT_GE(mid_stream_kills, 1) << "the catalog finished before any kill";
  auto stats = WaitForStats([](const auto& s) { return s.backlog() == 0 && s.in_flight() == 0; });
  ASSERT_EQ(stats.backlog(), 0);
  EXPECT_EQ(stats.dead_letter_count(), 0);

  catalog::v1::ListMediaRequest req;
  req.set_page_size(7);
  std::map<std::string, Media> seen;
  for (;;) {
    auto ctx = As(token);
    catalog::v1::ListMediaResponse resp;
    ASSERT_TRUE(stub_->ListMedia(ctx.get(), req, &resp).ok());
    for (const Media& m : resp.media()) {
      EXPECT_TRUE(seen.emplace(m.name(), m).second) << "repeated " << m.name();
    }
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  ASSERT_EQ(seen.size(), static_cast<size_t>(kMedia));
  for (const auto& [name, m] : seen) {
    EXPECT_EQ(m.etag(), absl::StrCat("v", 1 + kJobsPerMedia)) << name;
    EXPECT_EQ(m.state(), catalog::v1::PROCESSING) << name;
    EXPECT_NEAR(m.progress(), 0.5, 1e-9) << name;  // mean of 0.1 .. 0.9
    EXPECT_EQ(m.title(), "clip");
    auto ctx = As(token);
    catalog::v1::GetMediaRequest get;
    get.set_name(name);
    Media read;
    ASSERT_TRUE(stub_->GetMedia(ctx.get(), get, &read).ok()) << name;
    EXPECT_EQ(read.etag(), m.etag()) << name;
    EXPECT_NEAR(read.progress(), 0.5, 1e-9) << name;
  }
}

TEST_F(CatalogSystemTest, WatchMediaSurvivesARestartByReconnecting) {
  // An event published just as the catalog dies may be delivered to the
  // dying stream; that counts as an attempt, so allow more than one.
  const std::vector<std::string> flags = {"--max_delivery_attempts=10"};
  StartCatalog("127.0.0.1:0", flags);
  const std::string address = catalog_.grpc;
  const auto [alice, token] = SignIn("alice");
  Publish(t::Uploaded("w1", alice, "watch me"));
  WaitForStats([](const auto& s) { return s.acked() >= 1; });  // projected
  auto ctx = As(token, 60);
  catalog::v1::WatchMediaRequest req;
  req.set_name("media/w1");
  ctx->set_wait_for_ready(true);
  auto watch = stub_->WatchMedia(ctx.get(), req);
  Media m;
  ASSERT_TRUE(watch->Read(&m));
  EXPECT_EQ(m.state(), catalog::v1::UPLOADED);

  // The catalog crashes; a change happens while it is down.
  catalog_.process->Signal(SIGKILL);
  EXPECT_FALSE(watch->Read(&m));
  EXPECT_EQ(watch->Finish().error_code(), grpc::UNAVAILABLE);
  Publish(t::JobRequested("w1", alice, "360p"));
  StartCatalog(address, flags);  // same address: the client's channel reconnects

  // The client reconnects with the same channel and sees the current state.
  auto again_ctx = As(token, 60);
  again_ctx->set_wait_for_ready(true);
  auto again = stub_->WatchMedia(again_ctx.get(), req);
  do {
    ASSERT_TRUE(again->Read(&m)) << again->Finish().error_message()
                                 << "\nlast: " << m.ShortDebugString()
                                 << "\nstats: " << WaitForStats([](const auto&) {
                                                     return true;
                                                   }).ShortDebugString()
                                 << "\n"
                                 << catalog_.process->Stderr();
  } while (m.state() == catalog::v1::UPLOADED);  // until the backlog is projected
  EXPECT_EQ(m.state(), catalog::v1::PROCESSING);
  Publish(t::Ready("w1", alice));
  ASSERT_TRUE(again->Read(&m));
  EXPECT_EQ(m.state(), catalog::v1::READY);
  again_ctx->TryCancel();
  (void)again->Finish();
}

// Every record as an operator lists it, by name, without the signed URLs
// (fresh on every read) and update times.
std::map<std::string, std::string> Snapshot(catalog::v1::MediaCatalog::Stub* stub,
                                            auth::TokenSource* ops) {
  std::map<std::string, std::string> out;
  catalog::v1::ListMediaRequest req;
  req.set_owner("all");
  for (;;) {
    grpc::ClientContext ctx;
    EXPECT_TRUE(ops->Attach(ctx).ok());
    ctx.set_deadline(In(10));
    catalog::v1::ListMediaResponse resp;
    const grpc::Status s = stub->ListMedia(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok()) break;
    for (Media m : resp.media()) {
      for (auto& r : *m.mutable_renditions()) {
        r.clear_url();
        r.clear_hls_playlist_url();
        r.clear_url_expire_time();
      }
      m.mutable_poster()->clear_url();
      m.mutable_poster()->clear_url_expire_time();
      m.clear_hls_master_url();
      m.clear_url_expire_time();
      m.clear_update_time();
      m.clear_etag();  // versions count writes, which differ between orders
      out[m.name()] = m.DebugString();
    }
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  return out;
}

TEST_F(CatalogSystemTest, ARebuildFromTheBrokersEventsAndARestoredBackupEndWithTheSameRecords) {
  StartCatalog();
  const auto [alice, token] = SignIn("alice");
  for (int i = 0; i < 5; ++i) {
    const std::string id = absl::StrCat("r", i);
    Publish(t::Uploaded(id, alice, absl::StrCat("clip ", i),
                        absl::FromUnixSeconds(1767225600 + 60 * i)));
    Publish(t::JobRequested(id, alice, "360p"));
    if (i % 2 == 0) Publish(t::Ready(id, alice));
    if (i == 3) Publish(t::Failed(id, alice, "source is audio only"));
  }
  WaitForStats([](const auto& s) { return s.backlog() == 0 && s.acked() >= 14; });
  {
    auto ctx = As(token);
    catalog::v1::DeleteMediaRequest req;
    req.set_name("media/r1");
    google::protobuf::Empty empty;
    ASSERT_TRUE(stub_->DeleteMedia(ctx.get(), req, &empty).ok());
  }
  WaitForStats([](const auto& s) { return s.backlog() == 0 && s.acked() >= 15; });
  // An edit is an event too (through the catalog's outbox): the rebuild
  // keeps it.
  {
    auto ctx = As(token);
    catalog::v1::UpdateMediaRequest req;
    req.mutable_media()->set_name("media/r2");
    req.mutable_media()->set_title("renamed");
    req.mutable_media()->set_visibility(catalog::v1::PUBLIC);
    req.mutable_update_mask()->add_paths("title");
    req.mutable_update_mask()->add_paths("visibility");
    Media updated;
    const grpc::Status s = stub_->UpdateMedia(ctx.get(), req, &updated);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  WaitForStats([](const auto& s) { return s.backlog() == 0 && s.acked() >= 16; });
  const auto before = Snapshot(stub_.get(), ops_.get());
  ASSERT_EQ(before.size(), 4u);
  EXPECT_NE(before.at("media/r2").find("title: \"renamed\""), std::string::npos);
  EXPECT_NE(before.at("media/r2").find("visibility: PUBLIC"), std::string::npos);

  // Online backup while serving.
  catalog::v1::Backup backup;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(ops_->Attach(ctx).ok());
    const grpc::Status s = stub_->CreateBackup(&ctx, catalog::v1::CreateBackupRequest(), &backup);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(backup.media_count(), 4);
  }
  // An event after the backup.
  Publish(t::Uploaded("r9", alice, "after the backup"));
  WaitForStats([](const auto& s) { return s.backlog() == 0 && s.acked() >= 17; });
  const auto after = Snapshot(stub_.get(), ops_.get());
  ASSERT_EQ(after.size(), 5u);
  catalog_.process->Signal(SIGTERM);
  ASSERT_EQ(*catalog_.process->WaitForExit(absl::Seconds(20)), 0);

  // Rebuild: an empty data directory, the subscription seeked to earliest.
  catalog_dir_ = NewTempDir("rebuilt");
  StartCatalog("127.0.0.1:0", {"--rebuild"});
  WaitForStats([](const auto& s) { return s.backlog() == 0 && s.in_flight() == 0; });
  EXPECT_EQ(Snapshot(stub_.get(), ops_.get()), after);
  catalog_.process->Signal(SIGTERM);
  ASSERT_EQ(*catalog_.process->WaitForExit(absl::Seconds(20)), 0);
  // --rebuild refuses a store that holds records.
  {
    std::vector<std::string> args = {
        "--auth_server=" + auth_.grpc,
        "--broker_server=" + broker_.grpc,
        "--client_id=media-catalog",
        absl::StrCat("--client_secret_file=", config_, "/media-catalog.secret"),
        "--rebuild",
        "--listen=127.0.0.1:0",
        "--metrics_listen=127.0.0.1:0",
        absl::StrCat("--data_dir=", catalog_dir_, "/data")};
    auto p = ChildProcess::Start(RunfilePath("services/media-catalog/media-catalog"), args,
                                 catalog_dir_ + "/refused.log");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*(*p)->WaitForExit(absl::Seconds(20)), 1);
    EXPECT_NE((*p)->Stderr().find("rebuild: --data_dir already holds records"), std::string::npos)
        << (*p)->Stderr();
  }

  // Restore: the checkpoint copied into an empty data directory holds what
  // the backup held...
  auto restore = [&](const std::string& name) {
    catalog_dir_ = NewTempDir(name);
    std::filesystem::create_directories(catalog_dir_ + "/data");
    std::filesystem::copy(backup.path(), catalog_dir_ + "/data/db",
                          std::filesystem::copy_options::recursive);
  };
  restore("restored");
  StartCatalog();
  EXPECT_EQ(Snapshot(stub_.get(), ops_.get()), before);
  catalog_.process->Signal(SIGTERM);
  ASSERT_EQ(*catalog_.process->WaitForExit(absl::Seconds(20)), 0);
  // ...and --replay_since the backup's time brings back what came after it.
  restore("replayed");
  const std::string since = absl::FormatTime(
      absl::RFC3339_full, absl::FromUnixSeconds(backup.create_time().seconds()) - absl::Seconds(1),
      absl::UTCTimeZone());
  StartCatalog("127.0.0.1:0", {"--replay_since=" + since});
  WaitForStats([](const auto& s) { return s.backlog() == 0 && s.in_flight() == 0; });
  EXPECT_EQ(Snapshot(stub_.get(), ops_.get()), after);
}

}  // namespace
}  // namespace pettube
