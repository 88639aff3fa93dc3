// The upload service as a real process, with real auth-token-exchange and
// broker processes: resumable uploads over gRPC, the pettube.media.uploaded
// event (never lost, never doubled, also across SIGKILLs and while the
// broker is down), signed and bearer HTTP downloads that ffprobe can play,
// renditions written by workers, and deletion on pettube.media.deleted.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "libs/auth/credentials/token_source.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/publisher.h"
#include "libs/broker_client/stats_watcher.h"
#include "libs/broker_client/subscriber.h"
#include "libs/signed_url/url_signer.h"
#include "libs/testing/child_process.h"
#include "libs/testing/dev_sign_in.h"
#include "libs/testing/http_get.h"
#include "libs/testing/service_process.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"
#include "services/upload/sha256_state.h"

namespace pettube {
namespace {

using ::pettube::testing::ChildProcess;
using ::pettube::testing::HttpFetch;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::ServiceBinary;
using ::pettube::testing::ServiceProcess;
using upload::v1::Upload;

// A started service; `process` belongs to `service`.
struct Running {
  std::unique_ptr<ServiceProcess> service;
  ChildProcess* process = nullptr;
  std::string grpc;
  std::string objects;
};

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

std::string Sha(absl::string_view data) {
  upload::Sha256State s;
  s.Update(data);
  return s.HexDigest();
}

// A real 2 s 320x240 H.264/AAC clip made by ffmpeg.
std::string MakeClip(const std::string& dir) {
  const std::string path = dir + "/clip.mp4";
  const std::string cmd = absl::StrCat(
      "ffmpeg -v error -y -f lavfi -i testsrc2=size=320x240:rate=25:duration=2 -f lavfi -i "
      "sine=frequency=440:duration=2 -c:v libx264 -preset ultrafast -c:a aac -shortest ",
      path);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs a command and returns its stdout.
std::string Capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

std::string FakeMp4(size_t size, char fill) {
  std::string data = std::string(
      "\0\0\0\x20"
      "ftypisom",
      12);
  data.resize(size, fill);
  return data;
}

class UploadSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("system");
    const std::string secrets = dir_ + "/secrets";
    std::filesystem::create_directories(secrets);
    std::string clients = "[";
    const std::vector<std::pair<std::string, std::string>> workloads = {
        {"upload", R"("events.publish", "events.subscribe")"},
        {"worker", R"("objects.read", "objects.write")"},
        {"admin", R"("events.publish", "events.subscribe", "events.admin")"},
    };
    for (const auto& [id, scopes] : workloads) {
      std::ofstream(absl::StrCat(secrets, "/", id, ".secret"))
          << id << "-secret-0123456789abcdef\n";
      absl::StrAppend(&clients, clients.size() > 1 ? "," : "", R"({"client_id": ")", id,
                      R"(", "secret_file": ")", secrets, "/", id, R"(.secret", "scopes": [)",
                      scopes, "]}");
    }
    std::ofstream(secrets + "/clients.json") << clients << "]";
    std::ofstream(secrets + "/url-keys") << signed_url::KeyRing::GenerateText("k1");
    signer_ = std::make_unique<signed_url::UrlSigner>(
        *signed_url::KeyRing::FromFile("keys", secrets + "/url-keys"));

    auth_ = Start("auth-token-exchange", dir_ + "/auth",
                  {"--dev_idp", "--workload_clients_file=" + secrets + "/clients.json"});
    auth_channel_ = grpc::CreateChannel(auth_.grpc, grpc::InsecureChannelCredentials());
    StartBroker("127.0.0.1:0");
    admin_ = Workload("admin", {"events.publish", "events.subscribe", "events.admin"});
    worker_ = Workload("worker", {"objects.read", "objects.write"});
    StartUpload();
  }

  Running Start(const std::string& binary, const std::string& data_dir,
                std::vector<std::string> args, const std::string& listen = "127.0.0.1:0") {
    ServiceProcess::Options options;
    options.binary = ServiceBinary(binary);
    options.listen = listen;
    options.data_dir = data_dir;
    options.args = std::move(args);
    options.stderr_path = absl::StrCat(data_dir, ".", ++starts_, ".stderr");
    auto service = ServiceProcess::Start(std::move(options));
    EXPECT_TRUE(service.ok()) << service.status();
    Running r;
    if (!service.ok()) return r;
    r.service = std::move(*service);
    r.process = &r.service->process();
    r.grpc = r.service->grpc();
    r.objects = r.service->ReadyField("objects");
    return r;
  }

  // The broker, on `listen`; a restart passes the same address so the
  // upload service finds it again.
  void StartBroker(const std::string& listen) {
    broker_ = Start("broker", dir_ + "/broker", {"--auth_server=" + auth_.grpc}, listen);
    broker_channel_ = grpc::CreateChannel(broker_.grpc, grpc::InsecureChannelCredentials());
  }

  void StartUpload(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--auth_server=" + auth_.grpc,
                                     "--broker_server=" + broker_.grpc, "--client_id=upload",
                                     "--client_secret_file=" + dir_ + "/secrets/upload.secret",
                                     "--url_signing_keys_file=" + dir_ + "/secrets/url-keys"};
    args.insert(args.end(), extra.begin(), extra.end());
    upload_ = Start("upload", dir_ + "/upload", args);
    stub_ = Upload::NewStub(grpc::CreateChannel(upload_.grpc, grpc::InsecureChannelCredentials()));
  }

  void StopUpload(int signal_number) {
    upload_.process->Signal(signal_number);
    auto code = upload_.process->WaitForExit(absl::Seconds(30));
    ASSERT_TRUE(code.ok());
    if (signal_number == SIGTERM) {
      EXPECT_EQ(*code, 0) << upload_.process->Stderr();
    }
  }

  std::shared_ptr<auth::TokenSource> Workload(const std::string& id,
                                              std::vector<std::string> scopes) {
    return std::make_shared<auth::WorkloadTokenSource>(
        auth_channel_, id, id + "-secret-0123456789abcdef", std::move(scopes));
  }

  // Signs a person in through the dev identity provider.
  auth::v1::ExchangeTokenResponse SignIn(const std::string& user) {
    auto signed_in = ::pettube::testing::DevSignIn(auth_channel_, user);
    EXPECT_TRUE(signed_in.ok()) << signed_in.status();
    return signed_in.ok() ? *std::move(signed_in) : auth::v1::ExchangeTokenResponse();
  }

  static std::string IdentityId(const auth::v1::ExchangeTokenResponse& r) {
    return ::pettube::testing::IdentityId(r);
  }

  void Authorize(grpc::ClientContext& ctx, const std::string& token) {
    ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(In(30));
  }

  absl::StatusOr<upload::v1::UploadSession> Create(const std::string& token,
                                                   const std::string& title, int64_t size,
                                                   const std::string& bucket = "",
                                                   const std::string& key = "") {
    grpc::ClientContext ctx;
    Authorize(ctx, token);
    upload::v1::CreateUploadRequest req;
    req.set_title(title);
    req.set_total_size(size);
    req.set_bucket(bucket);
    req.set_key(key);
    upload::v1::UploadSession session;
    grpc::Status s = stub_->CreateUpload(&ctx, req, &session);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return session;
  }

  // One Write stream: `data` from `offset` in `chunk`-byte messages.
  grpc::Status Write(const std::string& token, const std::string& name, absl::string_view data,
                     int64_t offset, size_t chunk, bool finish, const std::string& sha,
                     upload::v1::WriteResponse* response = nullptr) {
    grpc::ClientContext ctx;
    Authorize(ctx, token);
    upload::v1::WriteResponse local;
    auto writer = stub_->Write(&ctx, response != nullptr ? response : &local);
    bool first = true;
    do {
      upload::v1::WriteRequest req;
      if (first) req.set_upload(name);
      first = false;
      const absl::string_view part = data.substr(0, chunk);
      data.remove_prefix(part.size());
      req.set_write_offset(offset);
      req.set_data(std::string(part));
      offset += part.size();
      if (data.empty() && finish) {
        req.set_finish_write(true);
        req.set_sha256(sha);
      }
      if (!writer->Write(req)) break;
    } while (!data.empty());
    writer->WritesDone();
    return writer->Finish();
  }

  upload::v1::UploadSession Query(const std::string& token, const std::string& name) {
    grpc::ClientContext ctx;
    Authorize(ctx, token);
    upload::v1::QueryUploadRequest req;
    req.set_name(name);
    upload::v1::UploadSession session;
    EXPECT_TRUE(stub_->QueryUpload(&ctx, req, &session).ok());
    return session;
  }

  // A complete upload; returns the committed session.
  upload::v1::UploadSession UploadWhole(const std::string& token, const std::string& data,
                                        const std::string& title = "clip") {
    auto session = Create(token, title, data.size());
    EXPECT_TRUE(session.ok()) << session.status();
    if (!session.ok()) return {};
    grpc::Status s = Write(token, session->name(), data, 0, 64 << 10, true, Sha(data));
    EXPECT_TRUE(s.ok()) << s.error_message();
    return Query(token, session->name());
  }

  void CreateSubscription(const std::string& id, const std::string& type) {
    auto stub = broker::v1::Broker::NewStub(broker_channel_);
    grpc::ClientContext ctx;
    ASSERT_TRUE(admin_->Attach(ctx).ok());
    ctx.set_deadline(In(10));
    broker::v1::CreateSubscriptionRequest req;
    req.set_subscription_id(id);
    req.mutable_subscription()->mutable_filter()->mutable_exact()->set_attribute("type");
    req.mutable_subscription()->mutable_filter()->mutable_exact()->set_value(type);
    broker::v1::Subscription created;
    grpc::Status s = stub->CreateSubscription(&ctx, req, &created);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  broker::v1::Subscription GetSubscription(const std::string& id) {
    auto stub = broker::v1::Broker::NewStub(broker_channel_);
    grpc::ClientContext ctx;
    EXPECT_TRUE(admin_->Attach(ctx).ok());
    ctx.set_deadline(In(10));
    broker::v1::GetSubscriptionRequest req;
    req.set_name("subscriptions/" + id);
    broker::v1::Subscription sub;
    EXPECT_TRUE(stub->GetSubscription(&ctx, req, &sub).ok());
    return sub;
  }

  // Consumes `want` events of subscription `id` (acking each) and returns
  // their ids in order of arrival; fails the test if they do not come
  // within 30 s.
  std::vector<std::string> Receive(const std::string& id, size_t want) {
    absl::Mutex mu;
    std::vector<std::string> ids;
    broker_client::Subscriber::Options options;
    options.subscription = "subscriptions/" + id;
    options.consumer = "test";
    options.configure_context = [this](grpc::ClientContext& ctx) { (void)admin_->Attach(ctx); };
    broker_client::Subscriber subscriber(broker_channel_, options);
    EXPECT_TRUE(subscriber
                    .Start([&](const broker_client::Delivery& d) {
                      absl::MutexLock lock(&mu);
                      ids.push_back(d.event().id());
                      return absl::OkStatus();
                    })
                    .ok());
    {
      absl::MutexLock lock(&mu);
      auto enough = [&]() { return ids.size() >= want; };
      EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30)))
          << "got " << ids.size() << " of " << want;
    }
    subscriber.Shutdown(absl::Seconds(5));
    absl::MutexLock lock(&mu);
    return ids;
  }

  std::string SignedPath(const std::string& bucket_key, const std::string& prefix,
                         absl::Duration ttl = absl::Hours(1)) {
    return signer_->SignedPath(bucket_key, prefix, absl::Now() + ttl);
  }

  std::string dir_;
  int starts_ = 0;
  Running auth_, broker_, upload_;
  std::shared_ptr<grpc::Channel> auth_channel_, broker_channel_;
  std::shared_ptr<auth::TokenSource> admin_, worker_;
  std::unique_ptr<Upload::Stub> stub_;
  std::unique_ptr<signed_url::UrlSigner> signer_;
};

TEST_F(UploadSystemTest, ARealClipIsCommittedAnnouncedOnceAndPlaysFromItsSignedUrl) {
  CreateSubscription("test-uploaded", "pettube.media.uploaded");
  const std::string clip = MakeClip(dir_);
  ASSERT_GT(clip.size(), 10000u);
  auto alice = SignIn("alice");
  upload::v1::UploadSession done = UploadWhole(alice.access_token(), clip, "Whiskers");
  ASSERT_EQ(done.state(), upload::v1::COMMITTED);
  EXPECT_EQ(done.committed().sha256(), Sha(clip));
  EXPECT_EQ(done.committed().key(),
            absl::StrCat(IdentityId(alice), "/", done.media().substr(6), "/source"));

  EXPECT_EQ(Receive("test-uploaded", 1), std::vector<std::string>{done.media()});

  const std::string object = "originals/" + done.committed().key();
  const std::string prefix =
      absl::StrCat("originals/", IdentityId(alice), "/", done.media().substr(6), "/");
  auto whole = HttpFetch(upload_.objects, "GET", SignedPath(object, prefix), {});
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->status, 200);
  EXPECT_EQ(whole->body, clip);
  EXPECT_TRUE(absl::StrContains(whole->headers, "Content-Type: video/mp4"));
  auto part = HttpFetch(upload_.objects, "GET", SignedPath(object, prefix), {"Range: bytes=4-7"});
  EXPECT_EQ(part->status, 206);
  EXPECT_EQ(part->body, "ftyp");
  // ffprobe plays it straight from the URL, seeking with Range requests.
  const std::string streams =
      Capture(absl::StrCat("ffprobe -v error -show_entries stream=codec_type -of csv=p=0 'http://",
                           upload_.objects, SignedPath(object, prefix), "'"));
  EXPECT_TRUE(absl::StrContains(streams, "video")) << streams;
  EXPECT_TRUE(absl::StrContains(streams, "audio")) << streams;

  // The same object for a worker with objects.read, and through the CLI-style
  // bearer route for its owner; not for someone else.
  const std::string worker_token = *worker_->Token();
  EXPECT_EQ(HttpFetch(upload_.objects, "HEAD", "/objects/" + object,
                      {"Authorization: Bearer " + worker_token})
                ->status,
            200);
  EXPECT_EQ(HttpFetch(upload_.objects, "GET", "/objects/" + object,
                      {"Authorization: Bearer " + alice.access_token(), "Range: bytes=0-3"})
                ->status,
            206);
  auto bob = SignIn("bob");
  EXPECT_EQ(HttpFetch(upload_.objects, "GET", "/objects/" + object,
                      {"Authorization: Bearer " + bob.access_token()})
                ->status,
            403);
  EXPECT_EQ(HttpFetch(upload_.objects, "GET", "/objects/" + object, {})->status, 401);
}

TEST_F(UploadSystemTest, BadUrlsAreRefusedPrecisely) {
  auto alice = SignIn("alice");
  upload::v1::UploadSession done = UploadWhole(alice.access_token(), FakeMp4(3000, 'a'));
  const std::string object = "originals/" + done.committed().key();
  const std::string prefix = "originals/" + IdentityId(alice) + "/";
  EXPECT_EQ(
      HttpFetch(upload_.objects, "GET", SignedPath(object, prefix, -absl::Seconds(5)), {})->status,
      403);
  EXPECT_EQ(
      HttpFetch(upload_.objects, "GET", SignedPath(object, "originals/someoneelse/"), {})->status,
      403);
  std::string tampered = SignedPath(object, prefix);
  tampered.replace(tampered.find(".k1.") + 4, 1, "9");
  EXPECT_EQ(HttpFetch(upload_.objects, "GET", tampered, {})->status, 403);
  const std::string token = signer_->Sign("originals/", absl::Now() + absl::Hours(1));
  // Traversal in every spelling never reaches outside the store.
  for (const std::string& path :
       {"/o/" + token + "/originals/../../../etc/passwd",
        "/o/" + token + "/originals/%2e%2e/%2e%2e/etc/passwd",
        "/o/" + token + "/originals/a%2f..%2f..%2fetc/passwd", "/o/" + token + "/originals/%00/x",
        "/o/" + token + "/etc/passwd"}) {
    auto r = HttpFetch(upload_.objects, "GET", path, {});
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->status == 400 || r->status == 403 || r->status == 404)
        << path << " " << r->status;
    EXPECT_FALSE(absl::StrContains(r->body, "root:")) << path;
  }
  auto unsatisfiable =
      HttpFetch(upload_.objects, "GET", SignedPath(object, prefix), {"Range: bytes=99999-"});
  EXPECT_EQ(unsatisfiable->status, 416);
  auto etag = HttpFetch(upload_.objects, "GET", SignedPath(object, prefix),
                        {"If-None-Match: \"" + done.committed().sha256() + "\""});
  EXPECT_EQ(etag->status, 304);
}

TEST_F(UploadSystemTest, BadWritesGetPreciseStatusesAndNothingIsPublished) {
  auto alice = SignIn("alice");
  auto bob = SignIn("bob");
  const std::string data = FakeMp4(6000, 'x');
  auto session = Create(alice.access_token(), "t", data.size());
  ASSERT_TRUE(session.ok());

  grpc::ClientContext none;
  none.set_deadline(In(10));
  upload::v1::UploadSession ignored;
  upload::v1::CreateUploadRequest req;
  req.set_title("t");
  EXPECT_EQ(stub_->CreateUpload(&none, req, &ignored).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Write(bob.access_token(), session->name(), data, 0, 1000, false, "").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Write(alice.access_token(), session->name(), "%PDF-1.4" + std::string(1000, 'p'), 0,
                  2000, false, "")
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Write(alice.access_token(), session->name(), data, 100, 1000, false, "").error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(
      Write(alice.access_token(), session->name(), FakeMp4(5 << 20, 'y'), 0, 5 << 20, false, "")
          .error_code(),
      grpc::StatusCode::INVALID_ARGUMENT)
      << "a chunk over 4 MiB";
  grpc::Status wrong =
      Write(alice.access_token(), session->name(), data, 0, 1000, true, Sha("not it"));
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::DATA_LOSS) << wrong.error_message();
  EXPECT_EQ(
      Write(alice.access_token(), session->name(), data, 0, 1000, true, Sha(data)).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION)
      << "the failed checksum aborted the upload";

  // A second stream while one is open is ABORTED, never interleaved.
  auto other = Create(alice.access_token(), "t2", 0);
  grpc::ClientContext first_ctx;
  Authorize(first_ctx, alice.access_token());
  upload::v1::WriteResponse first_response;
  auto first = stub_->Write(&first_ctx, &first_response);
  upload::v1::WriteRequest chunk;
  chunk.set_upload(other->name());
  chunk.set_data(FakeMp4(1000, 'z'));
  ASSERT_TRUE(first->Write(chunk));
  // The second stream is refused while the first holds the upload. (If it
  // reaches the server before the first one's message, it holds the upload
  // itself, is refused on its offset, and the first one waits for it.)
  // Either way the two never interleave. The unit tests pin ABORTED down.
  grpc::Status second = Write(alice.access_token(), other->name(), "", 1000, 10, false, "");
  EXPECT_TRUE(second.error_code() == grpc::StatusCode::ABORTED ||
              second.error_code() == grpc::StatusCode::OUT_OF_RANGE)
      << second.error_message();
  first->WritesDone();
  EXPECT_TRUE(first->Finish().ok());
  EXPECT_EQ(first_response.committed_size(), 1000);

  auto stub = broker::v1::Broker::NewStub(broker_channel_);
  grpc::ClientContext info_ctx;
  ASSERT_TRUE(admin_->Attach(info_ctx).ok());
  broker::v1::StreamInfo info;
  ASSERT_TRUE(stub->GetStreamInfo(&info_ctx, broker::v1::GetStreamInfoRequest(), &info).ok());
  EXPECT_EQ(info.last_sequence(), 0u) << "no event for failed uploads";
}

TEST_F(UploadSystemTest, AnUploadKilledMidwayResumesFromItsCommittedOffset) {
  auto alice = SignIn("alice");
  const std::string data = FakeMp4(20 << 20, 'k');
  auto session = Create(alice.access_token(), "big", data.size());
  ASSERT_TRUE(session.ok());
  {
    grpc::ClientContext ctx;
    Authorize(ctx, alice.access_token());
    upload::v1::WriteResponse response;
    auto writer = stub_->Write(&ctx, &response);
    int64_t offset = 0;
    for (int i = 0; i < 4; ++i) {
      upload::v1::WriteRequest req;
      if (i == 0) req.set_upload(session->name());
      req.set_write_offset(offset);
      req.set_data(data.substr(offset, 4 << 20));
      offset += 4 << 20;
      ASSERT_TRUE(writer->Write(req));
    }
    // 16 MiB sent, the stream still open: kill the service under it.
    StopUpload(SIGKILL);
    (void)writer->Finish();
  }
  StartUpload();
  const int64_t resume = Query(alice.access_token(), session->name()).committed_size();
  EXPECT_LE(resume, 16 << 20);
  EXPECT_EQ(resume % (4 << 20), 0) << "offsets are recorded at chunk boundaries";
  upload::v1::WriteResponse response;
  grpc::Status s =
      Write(alice.access_token(), session->name(), absl::string_view(data).substr(resume), resume,
            4 << 20, true, Sha(data), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.committed().sha256(), Sha(data));
  EXPECT_EQ(response.committed().size_bytes(), 20 << 20);
}

TEST_F(UploadSystemTest, ADroppedStreamResumesFromQueryUpload) {
  auto alice = SignIn("alice");
  const std::string data = FakeMp4(3 << 20, 'd');
  auto session = Create(alice.access_token(), "drop", 0);
  ASSERT_TRUE(session.ok());
  {
    grpc::ClientContext ctx;
    Authorize(ctx, alice.access_token());
    upload::v1::WriteResponse response;
    auto writer = stub_->Write(&ctx, &response);
    upload::v1::WriteRequest req;
    req.set_upload(session->name());
    req.set_data(data.substr(0, 1 << 20));
    ASSERT_TRUE(writer->Write(req));
    ctx.TryCancel();  // the connection drops
    (void)writer->Finish();
  }
  // What a client does after a drop: ask where to resume, write from there.
  // The server records what it took when it notices the drop; a new stream
  // waits for that hand-off, and a resume point read before it is answered
  // OUT_OF_RANGE: ask again.
  int64_t resume = 0;
  grpc::Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    resume = Query(alice.access_token(), session->name()).committed_size();
    s = Write(alice.access_token(), session->name(), absl::string_view(data).substr(resume), resume,
              1 << 20, true, Sha(data));
    if (s.error_code() != grpc::StatusCode::OUT_OF_RANGE) break;
  }
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Query(alice.access_token(), session->name()).committed().sha256(), Sha(data));
}

TEST_F(UploadSystemTest, TenUploadsWhileTheBrokerIsDownAreAnnouncedOnceItReturns) {
  CreateSubscription("test-uploaded", "pettube.media.uploaded");
  const std::string broker_address = broker_.grpc;
  broker_.process->Signal(SIGKILL);
  ASSERT_TRUE(broker_.process->WaitForExit(absl::Seconds(10)).ok());
  auto alice = SignIn("alice");
  std::set<std::string> media;
  for (int i = 0; i < 10; ++i) {
    upload::v1::UploadSession done =
        UploadWhole(alice.access_token(), FakeMp4(2000 + i, 'a' + i), absl::StrCat("v", i));
    ASSERT_EQ(done.state(), upload::v1::COMMITTED);
    EXPECT_FALSE(done.event_published());
    media.insert(done.media());
  }
  StartBroker(broker_address);
  std::vector<std::string> got = Receive("test-uploaded", 10);
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), media);
  EXPECT_EQ(got.size(), 10u);
  // A drain settles every publish; a restart republishes whatever was not
  // recorded as acknowledged. Neither adds an event.
  StopUpload(SIGTERM);
  StartUpload();
  StopUpload(SIGTERM);
  EXPECT_EQ(GetSubscription("test-uploaded").stats().backlog(), 0) << "no second copy";
}

TEST_F(UploadSystemTest, KilledBetweenCommitAndPublishTheEventGoesOutOnceAfterRestart) {
  CreateSubscription("test-uploaded", "pettube.media.uploaded");
  const std::string broker_address = broker_.grpc;
  broker_.process->Signal(SIGKILL);
  ASSERT_TRUE(broker_.process->WaitForExit(absl::Seconds(10)).ok());
  auto alice = SignIn("alice");
  upload::v1::UploadSession done = UploadWhole(alice.access_token(), FakeMp4(4000, 'q'));
  ASSERT_EQ(done.state(), upload::v1::COMMITTED);
  StopUpload(SIGKILL);  // the event is only in the outbox
  StartBroker(broker_address);
  StartUpload();
  EXPECT_EQ(Receive("test-uploaded", 1), std::vector<std::string>{done.media()});
  StopUpload(SIGTERM);
  StartUpload();
  EXPECT_TRUE(Query(alice.access_token(), done.name()).event_published());
  StopUpload(SIGTERM);
  EXPECT_EQ(GetSubscription("test-uploaded").stats().backlog(), 0) << "no second copy";
}

TEST_F(UploadSystemTest, WorkersWriteRenditionsAndDeletionRemovesEverything) {
  auto alice = SignIn("alice");
  upload::v1::UploadSession done = UploadWhole(alice.access_token(), FakeMp4(5000, 's'));
  const std::string media_id = done.media().substr(6);
  const std::string base = absl::StrCat(IdentityId(alice), "/", media_id);
  const std::string worker_token = *worker_->Token();
  // A person may not write renditions; a worker may, under existing media.
  EXPECT_EQ(Create(alice.access_token(), "", 10, "renditions", base + "/720p.mp4").status().code(),
            absl::StatusCode::kPermissionDenied);
  auto rendition = Create(worker_token, "", 0, "renditions", base + "/hls/720p.m3u8");
  ASSERT_TRUE(rendition.ok()) << rendition.status();
  const std::string playlist = "#EXTM3U\n#EXT-X-VERSION:7\n";
  ASSERT_TRUE(Write(worker_token, rendition->name(), playlist, 0, 1000, true, Sha(playlist)).ok());
  EXPECT_EQ(Create(worker_token, "", 0, "renditions", "someone/" + media_id + "/x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Create(worker_token, "", 0, "renditions", base + "/../../x").status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string prefix = "renditions/" + base + "/";
  auto fetched = HttpFetch(upload_.objects, "GET",
                           SignedPath("renditions/" + base + "/hls/720p.m3u8", prefix), {});
  EXPECT_EQ(fetched->body, playlist);

  // pettube.media.deleted removes the original and the renditions.
  broker_client::Publisher::Options po;
  po.configure_context = [this](grpc::ClientContext& ctx) { (void)admin_->Attach(ctx); };
  broker_client::Publisher publisher(broker_channel_, po);
  events::v1::MediaDeleted deleted;
  deleted.set_media(done.media());
  deleted.set_owner(IdentityId(alice));
  auto result = publisher.PublishAndWait(
      broker_client::NewEvent("pettube.media.deleted", "//pettube/media-catalog", done.media(),
                              deleted),
      absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  // The broker pushes the deletion subscription's stats: done once acked.
  absl::Notification acked;
  broker_client::StatsWatcher::Options wo;
  wo.subscription = "subscriptions/upload-media-deleted";
  wo.configure_context = po.configure_context;
  broker_client::StatsWatcher watcher(broker_channel_, wo);
  ASSERT_TRUE(watcher
                  .Start([&](const broker::v1::SubscriptionStats& s) {
                    if (s.acked() >= 1 && s.backlog() == 0 && !acked.HasBeenNotified()) {
                      acked.Notify();
                    }
                  })
                  .ok());
  ASSERT_TRUE(acked.WaitForNotificationWithTimeout(absl::Seconds(30))) << upload_.process->Stderr();
  watcher.Shutdown();
  EXPECT_EQ(HttpFetch(upload_.objects, "GET",
                      SignedPath("renditions/" + base + "/hls/720p.m3u8", prefix), {})
                ->status,
            404);
  EXPECT_EQ(HttpFetch(upload_.objects, "GET", "/objects/originals/" + base + "/source",
                      {"Authorization: Bearer " + worker_token})
                ->status,
            404);
  EXPECT_EQ(Create(worker_token, "", 0, "renditions", base + "/480p.mp4").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace pettube
