#include "tests/transcode/transcode_stack.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/broker_client/event_builder.h"
#include "libs/signed_url/url_signer.h"
#include "libs/testing/dev_sign_in.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"
#include "services/transcode-worker/object_writer.h"
#include "services/transcode-worker/subprocess.h"

namespace pettube::transcode::testing {

using ::io::cloudevents::v1::CloudEvent;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::ReadyField;
using ::pettube::testing::RunfilePath;
using ::pettube::testing::ServiceBinary;
using ::pettube::testing::ServiceProcess;

std::chrono::system_clock::time_point In(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Running StartBinary(const std::string& binary, const std::string& dir,
                    std::vector<std::string> args) {
  static int n = 0;
  ServiceProcess::Options options;
  options.binary = ServiceBinary(binary);
  options.data_dir = dir + "/data";
  options.args = std::move(args);
  options.stderr_path = absl::StrCat(dir, "/stderr.", ++n, ".log");
  auto service = ServiceProcess::Start(std::move(options));
  EXPECT_TRUE(service.ok()) << service.status();
  Running r;
  if (!service.ok()) return r;
  r.service = std::move(*service);
  r.process = &r.service->process();
  r.grpc = r.service->grpc();
  r.metrics = r.service->metrics();
  r.ready = r.service->ready_line();
  return r;
}

std::string MakeClip(const std::string& path, int seconds, const std::string& size, bool video) {
  Subprocess::Options o;
  o.argv = {"/usr/bin/ffmpeg", "-nostdin", "-v", "error", "-y"};
  if (video) {
    o.argv.insert(o.argv.end(),
                  {"-f", "lavfi", "-i", absl::StrCat("testsrc2=size=", size, ":rate=30")});
  }
  o.argv.insert(o.argv.end(), {"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t",
                               absl::StrCat(seconds)});
  if (video) {
    o.argv.insert(o.argv.end(), {"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"});
  }
  o.argv.insert(o.argv.end(), {"-c:a", "aac", "-shortest", "-f", "mp4", path});
  auto p = Subprocess::Start(o);
  if (!p.ok()) return "";
  auto r = (*p)->Wait();
  EXPECT_EQ(r.exit_code, 0) << r.stderr_tail;
  return ReadAll(path);
}

// ---------------------------------------------------------------- Observer

Observer::Observer(std::shared_ptr<grpc::Channel> broker, std::shared_ptr<auth::TokenSource> tokens,
                   const std::string& id) {
  auto stub = pettube::broker::v1::Broker::NewStub(broker);
  pettube::broker::v1::CreateSubscriptionRequest req;
  req.set_subscription_id(id);
  auto* any = req.mutable_subscription()->mutable_filter()->mutable_any();
  for (const char* type :
       {"pettube.media.ready", "pettube.media.failed", "pettube.transcode.job.requested",
        "pettube.transcode.job.progressed", "pettube.transcode.job.completed"}) {
    auto* f = any->add_filters()->mutable_exact();
    f->set_attribute("type");
    f->set_value(type);
  }
  req.mutable_subscription()->mutable_start_position()->mutable_earliest();
  grpc::ClientContext ctx;
  (void)tokens->Attach(ctx);
  ctx.set_deadline(In(10));
  pettube::broker::v1::Subscription created;
  grpc::Status s = stub->CreateSubscription(&ctx, req, &created);
  EXPECT_TRUE(s.ok()) << s.error_message();
  broker_client::Subscriber::Options o;
  o.subscription = "subscriptions/" + id;
  o.consumer = "observer";
  o.configure_context = [tokens](grpc::ClientContext& c) { (void)tokens->Attach(c); };
  subscriber_ = std::make_unique<broker_client::Subscriber>(broker, o);
  EXPECT_TRUE(subscriber_
                  ->Start([this](const broker_client::Delivery& d) {
                    absl::MutexLock lock(&mu_);
                    events_.emplace_back(absl::Now(), d.event());
                    return absl::OkStatus();
                  })
                  .ok());
}

Observer::~Observer() { subscriber_->Shutdown(absl::Seconds(2)); }

int Observer::CountLocked(const std::string& media, const std::string& type) {
  int n = 0;
  for (const auto& [t, e] : events_) {
    n += broker_client::GetAttribute(e, "subject").value_or("") == media && e.type() == type;
  }
  return n;
}

const CloudEvent* Observer::FindLocked(const std::string& media) {
  for (const auto& [t, e] : events_) {
    if (broker_client::GetAttribute(e, "subject").value_or("") == media &&
        (e.type() == "pettube.media.ready" || e.type() == "pettube.media.failed")) {
      return &e;
    }
  }
  return nullptr;
}

bool Observer::WaitForCount(const std::string& media, const std::string& type, int n,
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

std::optional<CloudEvent> Observer::WaitForType(const std::string& media, const std::string& type,
                                                absl::Duration timeout) {
  if (!WaitForCount(media, type, 1, timeout)) return std::nullopt;
  auto all = All(media, type);
  if (all.empty()) return std::nullopt;
  return all.front();
}

std::optional<CloudEvent> Observer::WaitFor(const std::string& media, absl::Duration timeout) {
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

std::vector<CloudEvent> Observer::All(const std::string& media, const std::string& type) {
  absl::MutexLock lock(&mu_);
  std::vector<CloudEvent> out;
  for (const auto& [t, e] : events_) {
    if (broker_client::GetAttribute(e, "subject").value_or("") == media && e.type() == type) {
      out.push_back(e);
    }
  }
  return out;
}

int Observer::Count(const std::string& media, const std::string& type) {
  absl::MutexLock lock(&mu_);
  return CountLocked(media, type);
}

std::vector<std::pair<absl::Time, CloudEvent>> Observer::Timeline() {
  absl::MutexLock lock(&mu_);
  return events_;
}

// ----------------------------------------------------------- TranscodeStack

std::unique_ptr<TranscodeStack> TranscodeStack::Start() {
  std::unique_ptr<TranscodeStack> s(new TranscodeStack());
  s->config_ = NewTempDir("config");
  const std::map<std::string, std::vector<std::string>> clients = {
      {"upload", {"events.publish", "events.subscribe", "events.admin"}},
      // Creating its subscriptions makes the coordinator their owner: no
      // events.admin needed.
      {"transcode-coordinator",
       {"events.publish", "events.subscribe", "objects.read", "objects.write"}},
      // The broker's default policy lets "transcode-worker" use the
      // coordinator's work queue; no events.admin.
      {"transcode-worker", {"events.publish", "events.subscribe", "objects.read", "objects.write"}},
      {"transcode-supervisor", {"events.subscribe"}},
      {"tester",
       {"events.publish", "events.subscribe", "events.admin", "objects.read", "transcode.admin"}},
  };
  std::string json = "[";
  for (const auto& [client, scopes] : clients) {
    std::ofstream(s->Secret(client)) << client << "-secret-0123456789abcdef\n";
    if (json.size() > 1) json += ",";
    absl::StrAppend(&json, R"({"client_id": ")", client, R"(", "secret_file": ")",
                    s->Secret(client), R"(", "scopes": [)");
    for (size_t i = 0; i < scopes.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "", "\"", scopes[i], "\"");
    }
    json += "]}";
  }
  json += "]";
  std::ofstream(s->config_ + "/clients.json") << json;
  std::ofstream(s->config_ + "/url_keys") << signed_url::KeyRing::GenerateText("k1");

  s->auth_ = StartBinary(
      "auth-token-exchange", NewTempDir("auth"),
      {"--dev_idp", absl::StrCat("--workload_clients_file=", s->config_, "/clients.json")});
  s->auth_channel_ = grpc::CreateChannel(s->auth_.grpc, grpc::InsecureChannelCredentials());
  s->broker_ = StartBinary("broker", NewTempDir("broker"),
                           {"--auth_server=" + s->auth_.grpc, "--sync=false"});
  s->broker_channel_ = grpc::CreateChannel(s->broker_.grpc, grpc::InsecureChannelCredentials());
  s->upload_ = StartBinary(
      "upload", NewTempDir("upload"),
      {"--auth_server=" + s->auth_.grpc, "--broker_server=" + s->broker_.grpc, "--client_id=upload",
       "--client_secret_file=" + s->Secret("upload"), "--objects_listen=127.0.0.1:0",
       absl::StrCat("--url_signing_keys_file=", s->config_, "/url_keys")});
  s->objects_ = ReadyField(s->upload_.ready, "objects");
  EXPECT_FALSE(s->objects_.empty()) << s->upload_.ready;
  s->tester_ = std::make_shared<auth::WorkloadTokenSource>(
      s->auth_channel_, "tester", "tester-secret-0123456789abcdef", std::vector<std::string>{});
  s->observer_ = std::make_unique<Observer>(s->broker_channel_, s->tester_);
  s->coordinator_dir_ = NewTempDir("coordinator");
  s->supervisor_dir_ = NewTempDir("supervisor");
  s->clips_ = NewTempDir("clips");
  return s;
}

TranscodeStack::~TranscodeStack() {
  observer_.reset();
  std::vector<Running*> running = {&supervisor_};
  for (auto& w : workers_) running.push_back(&w);
  running.push_back(&coordinator_);
  for (Running* r : running) {
    if (r->process) r->process->Signal(SIGTERM);
  }
  for (Running* r : running) {
    if (r->process) (void)r->process->WaitForExit(absl::Seconds(40));
  }
}

std::string TranscodeStack::Secret(const std::string& client) const {
  return config_ + "/" + client + ".secret";
}

std::vector<std::string> TranscodeStack::PeerArgs(const std::string& client) const {
  return {"--auth_server=" + auth_.grpc,
          "--broker_server=" + broker_.grpc,
          "--client_id=" + client,
          "--client_secret_file=" + Secret(client),
          "--objects_url=http://" + objects_,
          "--upload_server=" + upload_.grpc};
}

void TranscodeStack::StartCoordinator(std::vector<std::string> extra) {
  std::vector<std::string> args = PeerArgs("transcode-coordinator");
  args.push_back("--max_attempts=2");
  args.push_back("--hls_segment_seconds=1");
  args.insert(args.end(), extra.begin(), extra.end());
  coordinator_ = StartBinary("transcode-coordinator", coordinator_dir_, args);
  coordinator_stub_ = pettube::transcode::v1::TranscodeCoordinator::NewStub(
      grpc::CreateChannel(coordinator_.grpc, grpc::InsecureChannelCredentials()));
}

Running& TranscodeStack::StartWorker(const std::string& name, std::vector<std::string> extra) {
  std::vector<std::string> args = PeerArgs("transcode-worker");
  if (!name.empty()) args.push_back("--worker_name=" + name);
  args.push_back("--coordinator=" + coordinator_.grpc);
  args.push_back("--drain_deadline=5s");
  args.insert(args.end(), extra.begin(), extra.end());
  workers_.push_back(StartBinary("transcode-worker", NewTempDir("worker"), args));
  return workers_.back();
}

void TranscodeStack::StartSupervisor(int max_workers, absl::Duration worker_idle_exit) {
  std::string worker_args;
  for (const std::string& a : PeerArgs("transcode-worker")) absl::StrAppend(&worker_args, a, ",");
  absl::StrAppend(&worker_args, "--coordinator=", coordinator_.grpc, ",--worker_name=w{n}");
  supervisor_ = StartBinary(
      "transcode-supervisor", supervisor_dir_,
      {"--auth_server=" + auth_.grpc, "--broker_server=" + broker_.grpc,
       "--client_id=transcode-supervisor", "--client_secret_file=" + Secret("transcode-supervisor"),
       absl::StrCat("--max_workers=", max_workers),
       "--worker_binary=" + RunfilePath("services/transcode-worker/transcode-worker"),
       "--worker_args=" + worker_args,
       "--worker_idle_exit=" + absl::FormatDuration(worker_idle_exit)});
}

std::string TranscodeStack::SignIn(const std::string& user) {
  auto signed_in = pettube::testing::DevSignIn(auth_channel_, user);
  EXPECT_TRUE(signed_in.ok()) << signed_in.status();
  return signed_in.ok() ? signed_in->access_token() : "";
}

std::string TranscodeStack::Upload(const std::string& bytes, const std::string& title) {
  const std::string token = SignIn("alice");
  auto stub = pettube::upload::v1::Upload::NewStub(
      grpc::CreateChannel(upload_.grpc, grpc::InsecureChannelCredentials()));
  pettube::upload::v1::UploadSession session;
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(In(10));
    pettube::upload::v1::CreateUploadRequest req;
    req.set_title(title);
    req.set_content_type("video/mp4");
    req.set_total_size(static_cast<int64_t>(bytes.size()));
    grpc::Status st = stub->CreateUpload(&ctx, req, &session);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(In(60));
  pettube::upload::v1::WriteResponse resp;
  auto writer = stub->Write(&ctx, &resp);
  constexpr size_t kChunk = size_t{4} << 20;
  size_t offset = 0;
  do {
    pettube::upload::v1::WriteRequest chunk;
    chunk.set_upload(session.name());
    chunk.set_write_offset(static_cast<int64_t>(offset));
    const size_t n = std::min(kChunk, bytes.size() - offset);
    chunk.set_data(bytes.substr(offset, n));
    offset += n;
    if (offset == bytes.size()) {
      chunk.set_finish_write(true);
      chunk.set_sha256(Sha256Of(bytes));
    }
    if (!writer->Write(chunk)) break;
  } while (offset < bytes.size());
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  return session.media();
}

std::unique_ptr<grpc::ClientContext> TranscodeStack::AsTester(int seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  (void)tester_->Attach(*ctx);
  ctx->set_deadline(In(seconds));
  return ctx;
}

absl::StatusOr<pettube::testing::HttpResponse> TranscodeStack::GetObject(const std::string& bucket,
                                                                         const std::string& key) {
  auto token = tester_->Token();
  if (!token.ok()) return token.status();
  return pettube::testing::HttpFetch(objects_, "GET", absl::StrCat("/objects/", bucket, "/", key),
                                     {"Authorization: Bearer " + *token});
}

}  // namespace pettube::transcode::testing
