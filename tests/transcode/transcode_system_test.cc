// Transcoding over real processes: auth-token-exchange, broker, upload,
// transcode-coordinator and transcode-worker(s), with real ffmpeg on tiny
// generated clips (2 s at 320x240). A person uploads through the upload
// API; the test watches the broker for pettube.media.ready / .failed and
// reads the outputs back over HTTP.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "libs/auth/credentials/token_source.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/subscriber.h"
#include "libs/signed_url/url_signer.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "proto/pettube/transcode/v1/transcode.grpc.pb.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"
#include "services/transcode-worker/object_writer.h"
#include "services/transcode-worker/subprocess.h"

namespace pettube {
namespace {

namespace ev = ::pettube::events::v1;
namespace tv = ::pettube::transcode::v1;
using ::io::cloudevents::v1::CloudEvent;
using ::pettube::testing::ChildProcess;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::ReadyField;
using ::pettube::testing::RunfilePath;

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Running {
  std::unique_ptr<ChildProcess> process;
  std::string grpc;
  std::string ready;
};

Running Start(const std::string& binary, const std::string& dir, std::vector<std::string> args) {
  args.push_back("--listen=127.0.0.1:0");
  args.push_back("--metrics_listen=127.0.0.1:0");
  args.push_back("--data_dir=" + dir + "/data");
  static int n = 0;
  auto p = ChildProcess::Start(RunfilePath(absl::StrCat("services/", binary, "/", binary)), args,
                               absl::StrCat(dir, "/stderr.", ++n, ".log"));
  EXPECT_TRUE(p.ok()) << p.status();
  Running r{std::move(*p), "", ""};
  auto ready = r.process->WaitForReady(absl::Seconds(30));
  EXPECT_TRUE(ready.ok()) << binary << ": " << ready.status();
  if (ready.ok()) {
    r.grpc = ReadyField(*ready, "grpc");
    r.ready = *ready;
  }
  return r;
}

// A clip from ffmpeg's lavfi sources: `video` false gives audio only.
std::string MakeClip(const std::string& path, int seconds, bool video = true) {
  transcode::Subprocess::Options o;
  o.argv = {"/usr/bin/ffmpeg", "-nostdin", "-v", "error", "-y"};
  if (video) {
    o.argv.insert(o.argv.end(), {"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"});
  }
  o.argv.insert(o.argv.end(), {"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t",
                               absl::StrCat(seconds)});
  if (video) o.argv.insert(o.argv.end(), {"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"});
  o.argv.insert(o.argv.end(), {"-c:a", "aac", "-shortest", "-f", "mp4", path});
  auto p = transcode::Subprocess::Start(o);
  EXPECT_TRUE(p.ok());
  auto r = (*p)->Wait();
  EXPECT_EQ(r.exit_code, 0) << r.stderr_tail;
  return ReadAll(path);
}

// Collects media.ready / media.failed events from its own subscription.
class Observer {
 public:
  Observer(std::shared_ptr<grpc::Channel> broker, std::shared_ptr<auth::TokenSource> tokens) {
    auto stub = broker::v1::Broker::NewStub(broker);
    broker::v1::CreateSubscriptionRequest req;
    req.set_subscription_id("test-observer");
    auto* any = req.mutable_subscription()->mutable_filter()->mutable_any();
    for (const char* type : {"pettube.media.ready", "pettube.media.failed",
                             "pettube.transcode.job.requested"}) {
      auto* f = any->add_filters()->mutable_exact();
      f->set_attribute("type");
      f->set_value(type);
    }
    req.mutable_subscription()->mutable_start_position()->mutable_earliest();
    grpc::ClientContext ctx;
    (void)tokens->Attach(ctx);
    ctx.set_deadline(In(10));
    broker::v1::Subscription created;
    grpc::Status s = stub->CreateSubscription(&ctx, req, &created);
    EXPECT_TRUE(s.ok()) << s.error_message();
    broker_client::Subscriber::Options o;
    o.subscription = "subscriptions/test-observer";
    o.consumer = "test";
    o.configure_context = [tokens](grpc::ClientContext& c) { (void)tokens->Attach(c); };
    subscriber_ = std::make_unique<broker_client::Subscriber>(broker, o);
    EXPECT_TRUE(subscriber_
                    ->Start([this](const broker_client::Delivery& d) {
                      absl::MutexLock lock(&mu_);
                      events_.push_back(d.event());
                      return absl::OkStatus();
                    })
                    .ok());
  }
  ~Observer() { subscriber_->Shutdown(absl::Seconds(2)); }

  // Waits until `n` events of `type` about `media` arrived.
  bool WaitForCount(const std::string& media, const std::string& type, int n,
                    absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    struct Args {
      Observer* o;
      const std::string* media;
      const std::string* type;
      int n;
    } args{this, &media, &type, n};
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                      return a->o->CountLocked(*a->media, *a->type) >= a->n;
                                    },
                                    &args),
                                timeout);
  }

  // Waits for the first ready/failed event of `media`; nullopt on timeout.
  std::optional<CloudEvent> WaitFor(const std::string& media, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    struct Args {
      Observer* o;
      const std::string* media;
    } args{this, &media};
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                               return a->o->FindLocked(*a->media) != nullptr;
                             },
                             &args),
                         timeout);
    const CloudEvent* e = FindLocked(media);
    if (e == nullptr) return std::nullopt;
    return *e;
  }
  int Count(const std::string& media, const std::string& type) {
    absl::MutexLock lock(&mu_);
    return CountLocked(media, type);
  }

 private:
  int CountLocked(const std::string& media, const std::string& type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int n = 0;
    for (const auto& e : events_) {
      n += broker_client::GetAttribute(e, "subject").value_or("") == media && e.type() == type;
    }
    return n;
  }
  const CloudEvent* FindLocked(const std::string& media) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& e : events_) {
      if (broker_client::GetAttribute(e, "subject").value_or("") == media &&
          e.type() != "pettube.transcode.job.requested") {
        return &e;
      }
    }
    return nullptr;
  }
  absl::Mutex mu_;
  std::vector<CloudEvent> events_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<broker_client::Subscriber> subscriber_;
};

class TranscodeSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = NewTempDir("config");
    const std::map<std::string, std::vector<std::string>> clients = {
        {"upload", {"events.publish", "events.subscribe", "events.admin"}},
        {"transcode-coordinator",
         {"events.publish", "events.subscribe", "events.admin", "objects.read", "objects.write"}},
        {"transcode-worker", {"events.publish", "events.subscribe", "objects.read", "objects.write"}},
        {"tester",
         {"events.publish", "events.subscribe", "events.admin", "objects.read", "transcode.admin"}},
    };
    std::string json = "[";
    for (const auto& [client, scopes] : clients) {
      std::ofstream(Secret(client)) << client << "-secret-0123456789abcdef\n";
      if (json.size() > 1) json += ",";
      absl::StrAppend(&json, R"({"client_id": ")", client, R"(", "secret_file": ")",
                      Secret(client), R"(", "scopes": [)");
      for (size_t i = 0; i < scopes.size(); ++i) {
        absl::StrAppend(&json, i ? "," : "", "\"", scopes[i], "\"");
      }
      json += "]}";
    }
    json += "]";
    std::ofstream(config_ + "/clients.json") << json;
    std::ofstream(config_ + "/url_keys") << signed_url::KeyRing::GenerateText("k1");

    auth_ = Start("auth-token-exchange", NewTempDir("auth"),
                  {"--dev_idp", absl::StrCat("--workload_clients_file=", config_, "/clients.json")});
    auth_channel_ = grpc::CreateChannel(auth_.grpc, grpc::InsecureChannelCredentials());
    broker_ = Start("broker", NewTempDir("broker"), {"--auth_server=" + auth_.grpc, "--sync=false"});
    broker_channel_ = grpc::CreateChannel(broker_.grpc, grpc::InsecureChannelCredentials());
    upload_ = Start("upload", NewTempDir("upload"),
                    {"--auth_server=" + auth_.grpc, "--broker_server=" + broker_.grpc,
                     "--client_id=upload", "--client_secret_file=" + Secret("upload"),
                     "--objects_listen=127.0.0.1:0",
                     absl::StrCat("--url_signing_keys_file=", config_, "/url_keys")});
    objects_ = ReadyField(upload_.ready, "objects");
    ASSERT_FALSE(objects_.empty()) << upload_.ready;
    tester_ = std::make_shared<auth::WorkloadTokenSource>(
        auth_channel_, "tester", "tester-secret-0123456789abcdef", std::vector<std::string>{});
    observer_ = std::make_unique<Observer>(broker_channel_, tester_);
    coordinator_dir_ = NewTempDir("coordinator");
    clips_ = NewTempDir("clips");
  }

  void TearDown() override {
    observer_.reset();
    for (auto& w : workers_) {
      if (w.process) w.process->Signal(SIGTERM);
    }
    for (auto& w : workers_) {
      if (w.process) (void)w.process->WaitForExit(absl::Seconds(30));
    }
  }

  std::string Secret(const std::string& client) { return config_ + "/" + client + ".secret"; }

  std::vector<std::string> PeerArgs(const std::string& client) {
    return {"--auth_server=" + auth_.grpc, "--broker_server=" + broker_.grpc,
            "--client_id=" + client, "--client_secret_file=" + Secret(client),
            "--objects_url=http://" + objects_, "--upload_server=" + upload_.grpc};
  }

  void StartCoordinator() {
    std::vector<std::string> args = PeerArgs("transcode-coordinator");
    args.push_back("--max_attempts=2");
    args.push_back("--hls_segment_seconds=1");
    coordinator_ = Start("transcode-coordinator", coordinator_dir_, args);
    coordinator_stub_ = tv::TranscodeCoordinator::NewStub(
        grpc::CreateChannel(coordinator_.grpc, grpc::InsecureChannelCredentials()));
  }

  Running& StartWorker() {
    std::vector<std::string> args = PeerArgs("transcode-worker");
    args.push_back("--coordinator=" + coordinator_.grpc);
    args.push_back("--drain_deadline=5s");
    workers_.push_back(Start("transcode-worker", NewTempDir("worker"), args));
    return workers_.back();
  }

  // A person's access token through the dev IdP.
  std::string SignIn(const std::string& user) {
    auto idp = auth::v1::DevIdentityProvider::NewStub(auth_channel_);
    grpc::ClientContext mint_ctx;
    mint_ctx.set_deadline(In(10));
    auth::v1::MintIdTokenRequest mint;
    mint.set_user(user);
    auth::v1::MintIdTokenResponse id_token;
    EXPECT_TRUE(idp->MintIdToken(&mint_ctx, mint, &id_token).ok());
    grpc::ClientContext ctx;
    ctx.set_deadline(In(10));
    auth::v1::ExchangeTokenRequest req;
    req.set_subject_token(id_token.id_token());
    req.set_subject_token_type("urn:ietf:params:oauth:token-type:id_token");
    auth::v1::ExchangeTokenResponse resp;
    grpc::Status s = auth::v1::TokenExchange::NewStub(auth_channel_)->ExchangeToken(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.access_token();
  }

  // Uploads `bytes` as a person; returns the media name ("media/{id}").
  std::string Upload(const std::string& bytes, const std::string& title = "cat") {
    const std::string token = SignIn("alice");
    auto stub = upload::v1::Upload::NewStub(
        grpc::CreateChannel(upload_.grpc, grpc::InsecureChannelCredentials()));
    upload::v1::UploadSession session;
    {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer " + token);
      ctx.set_deadline(In(10));
      upload::v1::CreateUploadRequest req;
      req.set_title(title);
      req.set_content_type("video/mp4");
      req.set_total_size(static_cast<int64_t>(bytes.size()));
      grpc::Status s = stub->CreateUpload(&ctx, req, &session);
      EXPECT_TRUE(s.ok()) << s.error_message();
    }
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(In(30));
    upload::v1::WriteResponse resp;
    auto writer = stub->Write(&ctx, &resp);
    upload::v1::WriteRequest chunk;
    chunk.set_upload(session.name());
    chunk.set_write_offset(0);
    chunk.set_data(bytes);
    chunk.set_finish_write(true);
    chunk.set_sha256(transcode::Sha256Of(bytes));
    writer->Write(chunk);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return session.media();
  }

  std::unique_ptr<grpc::ClientContext> AsTester(int seconds = 10) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    (void)tester_->Attach(*ctx);
    ctx->set_deadline(In(seconds));
    return ctx;
  }

  absl::StatusOr<testing::HttpResponse> GetObject(const std::string& bucket,
                                                  const std::string& key) {
    auto token = tester_->Token();
    if (!token.ok()) return token.status();
    return testing::HttpFetch(objects_, "GET", absl::StrCat("/objects/", bucket, "/", key),
                              {"Authorization: Bearer " + *token});
  }

  std::string config_, objects_, coordinator_dir_, clips_;
  Running auth_, broker_, upload_, coordinator_;
  std::vector<Running> workers_;
  std::shared_ptr<grpc::Channel> auth_channel_, broker_channel_;
  std::shared_ptr<auth::TokenSource> tester_;
  std::unique_ptr<Observer> observer_;
  std::unique_ptr<tv::TranscodeCoordinator::Stub> coordinator_stub_;
};

TEST_F(TranscodeSystemTest, UploadBecomesReadyWithPlayableRenditions) {
  StartCoordinator();
  StartWorker();
  const std::string media = Upload(MakeClip(clips_ + "/clip.mp4", 2));
  auto event = observer_->WaitFor(media, absl::Seconds(120));
  ASSERT_TRUE(event.has_value()) << "no ready/failed event for " << media;
  ASSERT_EQ(event->type(), "pettube.media.ready");
  ev::MediaReady ready;
  ASSERT_TRUE(broker_client::UnpackPayload(*event, &ready).ok());
  ASSERT_EQ(ready.renditions_size(), 2);
  EXPECT_EQ(ready.source_info().width(), 320);
  EXPECT_TRUE(ready.source_info().has_audio());
  EXPECT_FALSE(ready.poster().key().empty());

  // The master playlist names the variant, whose playlist names its file.
  auto master = GetObject("renditions", ready.master_playlist().key());
  ASSERT_TRUE(master.ok()) << master.status();
  EXPECT_EQ(master->status, 200);
  EXPECT_NE(master->body.find("240p.m3u8"), std::string::npos) << master->body;
  EXPECT_NE(master->body.find("CODECS=\"avc1.64"), std::string::npos) << master->body;
  for (const auto& r : ready.renditions()) {
    if (r.rendition().kind() != ev::VIDEO) continue;
    auto variant = GetObject("renditions", r.hls_playlist().key());
    ASSERT_TRUE(variant.ok());
    EXPECT_NE(variant->body.find("#EXT-X-MAP:URI=\"240p.mp4\""), std::string::npos) << variant->body;
    auto mp4 = GetObject("renditions", r.output().key());
    ASSERT_TRUE(mp4.ok());
    EXPECT_EQ(mp4->status, 200);
    EXPECT_EQ(transcode::Sha256Of(mp4->body), r.output().sha256());
    EXPECT_LT(mp4->body.find("moov"), mp4->body.find("mdat"));  // +faststart
  }

  tv::GetTranscodePlanRequest req;
  req.set_name(media + "/plan");
  tv::TranscodePlan plan;
  grpc::Status s = coordinator_stub_->GetTranscodePlan(AsTester().get(), req, &plan);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(plan.state(), tv::COMPLETED);
  for (const auto& job : plan.jobs()) {
    EXPECT_EQ(job.state(), tv::SUCCEEDED) << job.name();
    EXPECT_EQ(job.attempts(), 1) << job.name();
  }
  EXPECT_EQ(observer_->Count(media, "pettube.media.ready"), 1);
}

TEST_F(TranscodeSystemTest, AudioOnlyUploadFailsWithAReadableReason) {
  StartCoordinator();
  const std::string media = Upload(MakeClip(clips_ + "/audio.mp4", 2, /*video=*/false));
  auto event = observer_->WaitFor(media, absl::Seconds(60));
  ASSERT_TRUE(event.has_value());
  ASSERT_EQ(event->type(), "pettube.media.failed");
  ev::MediaFailed failed;
  ASSERT_TRUE(broker_client::UnpackPayload(*event, &failed).ok());
  EXPECT_EQ(failed.reason(), ev::NO_VIDEO_STREAM);
  EXPECT_EQ(failed.error(), "source: has no video stream (audio only)");
}

TEST_F(TranscodeSystemTest, TruncatedUploadFailsAsCorrupt) {
  StartCoordinator();
  const std::string clip = MakeClip(clips_ + "/clip.mp4", 2);
  const std::string media = Upload(clip.substr(0, clip.size() / 3));
  auto event = observer_->WaitFor(media, absl::Seconds(60));
  ASSERT_TRUE(event.has_value());
  ASSERT_EQ(event->type(), "pettube.media.failed");
  ev::MediaFailed failed;
  ASSERT_TRUE(broker_client::UnpackPayload(*event, &failed).ok());
  EXPECT_EQ(failed.reason(), ev::SOURCE_CORRUPT) << failed.error();
}

TEST_F(TranscodeSystemTest, CoordinatorKilledMidLadderResumesAndIsReadyOnce) {
  // No worker yet: the plan is made and queued, nothing runs.
  StartCoordinator();
  const std::string media = Upload(MakeClip(clips_ + "/clip.mp4", 2));
  // The plan is committed before its job requests are published.
  ASSERT_TRUE(observer_->WaitForCount(media, "pettube.transcode.job.requested", 2,
                                      absl::Seconds(60)));
  coordinator_.process->Signal(SIGKILL);
  ASSERT_TRUE(coordinator_.process->WaitForExit(absl::Seconds(10)).ok());
  StartCoordinator();  // same data directory
  StartWorker();
  auto event = observer_->WaitFor(media, absl::Seconds(120));
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->type(), "pettube.media.ready");
  tv::GetTranscodePlanRequest req;
  req.set_name(media + "/plan");
  tv::TranscodePlan plan;
  ASSERT_TRUE(coordinator_stub_->GetTranscodePlan(AsTester().get(), req, &plan).ok());
  EXPECT_EQ(plan.state(), tv::COMPLETED);
  EXPECT_EQ(plan.jobs_size(), 2);
  EXPECT_EQ(observer_->Count(media, "pettube.media.ready"), 1);
}

}  // namespace
}  // namespace pettube
