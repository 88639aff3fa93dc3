// The PetTube user story end to end, over the real binaries (LocalStack):
// two people at once, each seeing only their own media through every RPC
// and URL; an upload while the coordinator is down; the broker SIGKILLed
// mid-flow; the catalog restarted mid-flow; a corrupt upload ending FAILED
// with a reason; an interrupted upload resumed by the pettube CLI.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "cli/pettube/config.h"
#include "cli/pettube/uploader.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/dev_sign_in.h"
#include "libs/testing/http_get.h"
#include "libs/time/proto_time.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/catalog/v1/catalog.grpc.pb.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"
#include "tests/e2e/local_stack.h"

namespace pettube::e2e {
namespace {

using catalog::v1::Media;
using catalog::v1::MediaCatalog;
using upload::v1::Upload;

constexpr absl::Duration kReadyTimeout = absl::Seconds(120);

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A 2 s 320x240 H.264/AAC MP4 made once per test binary.
const std::string& Clip(bool faststart = true) {
  static std::string paths[2];
  std::string& path = paths[faststart ? 1 : 0];
  if (path.empty()) {
    path = testing::NewTempDir("clip") + (faststart ? "/clip.mp4" : "/slow.mp4");
    const std::string cmd = absl::StrCat(
        "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=25 "
        "-f lavfi -i sine=frequency=440 -t 2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p "
        "-c:a aac -shortest ",
        faststart ? "-movflags +faststart " : "", path);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  return path;
}

std::string Sha256Hex(const std::string& data) {
  const std::string file = testing::NewTempDir("sha") + "/f";
  std::ofstream(file, std::ios::binary) << data;
  auto sha = cli::Sha256OfFile(file);
  EXPECT_TRUE(sha.ok()) << sha.status();
  return sha.ok() ? *sha : std::string();
}

class StoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Clip();
    auto stack = LocalStack::Start(testing::NewTempDir("stack"), testing::RunfilePath(""));
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& service) {
    return grpc::CreateChannel(stack_->Grpc(service), grpc::InsecureChannelCredentials());
  }

  static void Deadline(grpc::ClientContext& ctx, absl::Duration d = absl::Seconds(15)) {
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + d));
  }

  // A person's access token through the dev identity provider.
  std::string SignIn(const std::string& user) {
    auto signed_in = ::pettube::testing::DevSignIn(Channel("auth-token-exchange"), user);
    EXPECT_TRUE(signed_in.ok()) << signed_in.status();
    return signed_in.ok() ? signed_in->access_token() : "";
  }

  static void Auth(grpc::ClientContext& ctx, const std::string& token) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }

  // CreateUpload + one Write stream; the session is returned with the
  // committed media (or the Write's error).
  absl::StatusOr<upload::v1::UploadSession> UploadBytes(const std::string& token,
                                                        const std::string& data,
                                                        const std::string& title,
                                                        int64_t stop_after = -1) {
    auto stub = Upload::NewStub(Channel("upload"));
    upload::v1::UploadSession session;
    {
      grpc::ClientContext ctx;
      Deadline(ctx);
      Auth(ctx, token);
      upload::v1::CreateUploadRequest req;
      req.set_title(title);
      req.set_content_type("video/mp4");
      req.set_total_size(data.size());
      const grpc::Status s = stub->CreateUpload(&ctx, req, &session);
      if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    }
    grpc::ClientContext ctx;
    Deadline(ctx, absl::Seconds(60));
    Auth(ctx, token);
    upload::v1::WriteResponse resp;
    auto writer = stub->Write(&ctx, &resp);
    const int64_t end = stop_after >= 0 ? stop_after : static_cast<int64_t>(data.size());
    constexpr int64_t kChunk = 256 << 10;
    for (int64_t at = 0; at < end || (at == 0 && end == 0);) {
      const int64_t n = std::min(kChunk, end - at);
      upload::v1::WriteRequest req;
      if (at == 0) req.set_upload(session.name());
      req.set_write_offset(at);
      req.set_data(data.substr(at, n));
      if (stop_after < 0 && at + n >= static_cast<int64_t>(data.size())) {
        req.set_finish_write(true);
        req.set_sha256(Sha256Hex(data));
      }
      if (!writer->Write(req)) break;
      at += n;
      if (n == 0) break;
    }
    writer->WritesDone();
    const grpc::Status s = writer->Finish();
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    if (!resp.committed().media().empty()) session.set_media(resp.committed().media());
    return session;
  }

  // Waits (WatchMedia on all the person's media: pushed, with a deadline)
  // until `name` is in a state `done` accepts; returns that version.
  absl::StatusOr<Media> WaitFor(const std::string& token, const std::string& name,
                                const std::function<bool(const Media&)>& done,
                                absl::Duration timeout = kReadyTimeout) {
    const absl::Time deadline = absl::Now() + timeout;
    Media last;
    // The catalog may restart under us: reconnect until the deadline.
    while (absl::Now() < deadline) {
      auto stub = MediaCatalog::NewStub(Channel("media-catalog"));
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      Auth(ctx, token);
      catalog::v1::WatchMediaRequest req;
      req.set_name("media/-");
      auto reader = stub->WatchMedia(&ctx, req);
      Media m;
      while (reader->Read(&m)) {
        if (m.name() != name) continue;
        last = m;
        if (done(m)) {
          ctx.TryCancel();
          reader->Finish();
          return m;
        }
      }
      const grpc::Status s = reader->Finish();
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    }
    return absl::DeadlineExceededError(
        absl::StrCat(name, " still ", catalog::v1::MediaState_Name(last.state()), " ",
                     last.error()));
  }

  absl::StatusOr<Media> WaitForOutcome(const std::string& token, const std::string& name) {
    return WaitFor(token, name, [](const Media& m) {
      return m.state() == catalog::v1::READY || m.state() == catalog::v1::FAILED;
    });
  }

  grpc::Status GetMedia(const std::string& token, const std::string& name, Media* out) {
    grpc::ClientContext ctx;
    Deadline(ctx);
    Auth(ctx, token);
    catalog::v1::GetMediaRequest req;
    req.set_name(name);
    return MediaCatalog::NewStub(Channel("media-catalog"))->GetMedia(&ctx, req, out);
  }

  std::vector<Media> ListMine(const std::string& token) {
    grpc::ClientContext ctx;
    Deadline(ctx);
    Auth(ctx, token);
    catalog::v1::ListMediaRequest req;
    req.set_owner("me");
    catalog::v1::ListMediaResponse resp;
    EXPECT_TRUE(MediaCatalog::NewStub(Channel("media-catalog"))->ListMedia(&ctx, req, &resp).ok());
    return {resp.media().begin(), resp.media().end()};
  }

  // "http://H:P/path" -> HttpGet(H:P, /path).
  static absl::StatusOr<testing::HttpResponse> Fetch(const std::string& url) {
    constexpr absl::string_view kScheme = "http://";
    if (!absl::StartsWith(url, kScheme)) return absl::InvalidArgumentError(url);
    const std::string rest = url.substr(kScheme.size());
    const size_t slash = rest.find('/');
    return testing::HttpGet(rest.substr(0, slash), rest.substr(slash));
  }

  std::unique_ptr<LocalStack> stack_;
};

std::set<std::string> Names(const std::vector<Media>& media) {
  std::set<std::string> names;
  for (const Media& m : media) names.insert(m.name());
  return names;
}

TEST_F(StoryTest, TwoPeopleAtOnceEachSeeOnlyTheirOwnMedia) {
  const std::string alice = SignIn("alice");
  const std::string bob = SignIn("bob");
  const std::string clip = ReadAll(Clip());
  absl::StatusOr<upload::v1::UploadSession> a, b;
  std::thread ta([&] { a = UploadBytes(alice, clip, "Rex"); });
  std::thread tb([&] { b = UploadBytes(bob, clip, "Tom"); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  auto ready_a = WaitForOutcome(alice, a->media());
  auto ready_b = WaitForOutcome(bob, b->media());
  ASSERT_TRUE(ready_a.ok()) << ready_a.status();
  ASSERT_TRUE(ready_b.ok()) << ready_b.status();
  ASSERT_EQ(ready_a->state(), catalog::v1::READY) << ready_a->error();
  ASSERT_EQ(ready_b->state(), catalog::v1::READY) << ready_b->error();
  ASSERT_GT(ready_a->renditions_size(), 0);

  EXPECT_EQ(Names(ListMine(alice)), std::set<std::string>{a->media()});
  EXPECT_EQ(Names(ListMine(bob)), std::set<std::string>{b->media()});

  // Bob cannot read, change, delete or watch Alice's media, nor her upload.
  Media m;
  EXPECT_EQ(GetMedia(bob, a->media(), &m).error_code(), grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext ctx;
    Deadline(ctx);
    Auth(ctx, bob);
    catalog::v1::UpdateMediaRequest req;
    req.mutable_media()->set_name(a->media());
    req.mutable_media()->set_title("mine now");
    req.mutable_update_mask()->add_paths("title");
    const grpc::Status s = MediaCatalog::NewStub(Channel("media-catalog"))->UpdateMedia(&ctx, req, &m);
    EXPECT_TRUE(s.error_code() == grpc::StatusCode::NOT_FOUND ||
                s.error_code() == grpc::StatusCode::PERMISSION_DENIED)
        << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    Deadline(ctx);
    Auth(ctx, bob);
    catalog::v1::DeleteMediaRequest req;
    req.set_name(a->media());
    google::protobuf::Empty empty;
    const grpc::Status s =
        MediaCatalog::NewStub(Channel("media-catalog"))->DeleteMedia(&ctx, req, &empty);
    EXPECT_TRUE(s.error_code() == grpc::StatusCode::NOT_FOUND ||
                s.error_code() == grpc::StatusCode::PERMISSION_DENIED)
        << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    Deadline(ctx);
    Auth(ctx, bob);
    catalog::v1::WatchMediaRequest req;
    req.set_name(a->media());
    auto reader = MediaCatalog::NewStub(Channel("media-catalog"))->WatchMedia(&ctx, req);
    EXPECT_FALSE(reader->Read(&m));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    Deadline(ctx);
    Auth(ctx, bob);
    upload::v1::QueryUploadRequest req;
    req.set_name(a->name());
    upload::v1::UploadSession session;
    EXPECT_EQ(Upload::NewStub(Channel("upload"))->QueryUpload(&ctx, req, &session).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }

  // URLs: Alice's signed URL plays; the same token does not open Bob's
  // object; Bob's person token does not open her object directly.
  const std::string url = ready_a->renditions(0).url();
  auto fetched = Fetch(url);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(fetched->status, 200) << url;
  EXPECT_EQ(fetched->body.size(), ready_a->renditions(0).size_bytes());
  const std::string a_id = a->media().substr(6), b_id = b->media().substr(6);
  const std::string b_owner = ready_b->owner(), a_owner = ready_a->owner();
  ASSERT_NE(a_owner, b_owner);
  const std::string tampered = absl::StrReplaceAll(
      url, {{absl::StrCat(a_owner, "/", a_id), absl::StrCat(b_owner, "/", b_id)}});
  ASSERT_NE(tampered, url);
  auto refused = Fetch(tampered);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 403) << tampered;
  const std::string key = url.substr(url.find("/renditions/") + 1);
  auto direct = testing::HttpGet(stack_->Objects(), absl::StrCat("/objects/", key));
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(direct->status == 401 || direct->status == 403) << direct->status;

  // Alice's media is untouched.
  ASSERT_TRUE(GetMedia(alice, a->media(), &m).ok());
  EXPECT_EQ(m.title(), "Rex");
  EXPECT_EQ(m.state(), catalog::v1::READY);
}

TEST_F(StoryTest, UploadWhileTheCoordinatorIsDownCompletesWhenItReturns) {
  const std::string alice = SignIn("alice");
  ASSERT_EQ(*stack_->StopService("transcode-coordinator", SIGTERM), 0);
  auto up = UploadBytes(alice, ReadAll(Clip()), "while down");
  ASSERT_TRUE(up.ok()) << up.status();
  auto uploaded = WaitFor(alice, up->media(),
                          [](const Media& m) { return m.state() == catalog::v1::UPLOADED; });
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  // Same port: the worker holds the coordinator's address.
  ASSERT_TRUE(stack_->StartService("transcode-coordinator", /*same_port=*/true).ok());
  auto done = WaitForOutcome(alice, up->media());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), catalog::v1::READY) << done->error();
}

TEST_F(StoryTest, BrokerKilledMidFlowLosesNothingAndDoublesNothing) {
  const std::string alice = SignIn("alice");
  auto first = UploadBytes(alice, ReadAll(Clip()), "before the crash");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(*stack_->StopService("broker", SIGKILL), 128 + SIGKILL);
  // Committed while the broker is down: waits in upload's outbox.
  auto second = UploadBytes(alice, ReadAll(Clip()), "during the crash");
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(stack_->StartService("broker", /*same_port=*/true).ok());
  for (const auto* up : {&*first, &*second}) {
    auto done = WaitForOutcome(alice, up->media());
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_EQ(done->state(), catalog::v1::READY) << done->error();
    std::set<std::string> renditions;
    for (const auto& r : done->renditions()) {
      EXPECT_TRUE(renditions.insert(r.name()).second) << "rendition twice: " << r.name();
    }
  }
  const std::vector<Media> mine = ListMine(alice);
  EXPECT_EQ(mine.size(), 2u);
  EXPECT_EQ(Names(mine), (std::set<std::string>{first->media(), second->media()}));
}

TEST_F(StoryTest, CatalogRestartedMidFlowStillReachesReady) {
  const std::string alice = SignIn("alice");
  auto up = UploadBytes(alice, ReadAll(Clip()), "catalog restart");
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_EQ(*stack_->StopService("media-catalog", SIGTERM), 0);
  ASSERT_TRUE(stack_->StartService("media-catalog").ok());
  auto done = WaitForOutcome(alice, up->media());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), catalog::v1::READY) << done->error();
  EXPECT_EQ(ListMine(alice).size(), 1u);
}

TEST_F(StoryTest, CorruptUploadEndsFailedWithAReadableReason) {
  const std::string alice = SignIn("alice");
  // The container's start is intact (it passes upload's sniffing) but the
  // file is cut: without faststart the index (moov) is at the end, lost.
  const std::string whole = ReadAll(Clip(/*faststart=*/false));
  auto up = UploadBytes(alice, whole.substr(0, whole.size() / 3), "corrupt");
  if (!up.ok()) {
    RecordProperty("refused_at_upload", std::string(up.status().message()));
    // Refused at the door is readable too, but then it must say why.
    EXPECT_EQ(up.status().code(), absl::StatusCode::kInvalidArgument) << up.status();
    EXPECT_FALSE(up.status().message().empty());
    return;
  }
  auto done = WaitForOutcome(alice, up->media());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), catalog::v1::FAILED);
  EXPECT_GT(done->error().size(), 10u) << done->error();
  RecordProperty("failed_reason", done->error());
}

TEST_F(StoryTest, InterruptedCliUploadIsResumedByTheCli) {
  const std::string dir = testing::NewTempDir("cli");
  const std::string home = dir + "/stack";
  std::filesystem::create_directories(home + "/run");
  std::ofstream(home + "/run/endpoints") << stack_->EndpointsFile();
  const std::string cli = testing::RunfilePath("cli/pettube/pettube");
  const std::string env =
      absl::StrCat("XDG_CONFIG_HOME=", dir, "/config PETTUBE_HOME=", home, " ");
  ASSERT_EQ(std::system(absl::StrCat(env, cli, " login carol > ", dir, "/login.out 2>&1").c_str()),
            0)
      << ReadAll(dir + "/login.out");

  // What an interrupted `pettube upload` leaves: a session with half the
  // bytes, recorded under the file's path, size and mtime.
  const std::string file = dir + "/pet.mp4";
  std::filesystem::copy_file(Clip(), file);
  const std::string data = ReadAll(file);
  auto creds = cli::ParseCredentials(ReadAll(dir + "/config/pettube/credentials.json"));
  ASSERT_TRUE(creds.ok()) << creds.status();
  auto half = UploadBytes(creds->access_token, data, "pet", data.size() / 2);
  ASSERT_TRUE(half.ok()) << half.status();
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  auto store = cli::ResumeStore::Load(dir + "/config/pettube/uploads.json");
  ASSERT_TRUE(store.ok());
  store->Put(cli::ResumeStore::Key(file, st.st_size,
                                   int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec),
             half->name());
  ASSERT_TRUE(store->Save().ok());

  const std::string out = dir + "/upload.out";
  ASSERT_EQ(std::system(absl::StrCat(env, cli, " upload ", file, " > ", out, " 2>&1").c_str()), 0)
      << ReadAll(out);
  const std::string text = ReadAll(out);
  RecordProperty("cli_output", text);
  EXPECT_NE(text.find("resuming at"), std::string::npos) << text;
  EXPECT_NE(text.find(half->media()), std::string::npos) << text;
  // Rerun of the CLI's own watch: READY with exit 0.
  ASSERT_EQ(std::system(absl::StrCat(env, cli, " watch ", half->media(), " --timeout=120s > ", dir,
                                     "/watch.out 2>&1")
                            .c_str()),
            0)
      << ReadAll(dir + "/watch.out");
  EXPECT_EQ(ListMine(creds->access_token).size(), 1u);
}

}  // namespace
}  // namespace pettube::e2e
