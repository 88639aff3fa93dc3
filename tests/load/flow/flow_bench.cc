// The whole flow's figures (issue 12), printed as a table:
//   1. control path: upload committed (Write answered) -> the catalog's
//      record visible (pushed on WatchMedia), over N small uploads, with
//      no coordinator running (transcoding excluded);
//   2. upload committed -> READY for the demo clip (3 s 640x360), full
//      stack with the supervisor scaling workers from zero, R runs;
//   3. idle CPU of every process of the full stack over a window with
//      nothing to do (utime+stime from /proc, children included).
// Usage: bazel run --config=opt //tests/load/flow:flow_bench -- [N] [R] [IDLE_SECONDS]
// (tests/load/flow/run_flow_bench.sh also times scripts/up.sh --once.)

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "cli/pettube/uploader.h"
#include "libs/testing/child_process.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/catalog/v1/catalog.grpc.pb.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"
#include "tests/e2e/local_stack.h"

namespace pettube {
namespace {

using catalog::v1::Media;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "flow_bench: %s\n", why.c_str());
  std::exit(1);
}

std::string MakeClip(const std::string& dir, const std::string& size, double seconds) {
  const std::string path = absl::StrCat(dir, "/clip-", size, ".mp4");
  const std::string cmd = absl::StrCat(
      "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=", size,
      ":rate=30 -f lavfi -i sine=frequency=440 -t ", seconds,
      " -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -shortest -movflags +faststart ",
      path);
  if (std::system(cmd.c_str()) != 0) Die(cmd);
  return path;
}

struct Client {
  std::shared_ptr<grpc::Channel> auth, upload, catalog;
  std::string token;
};

Client SignIn(const e2e::LocalStack& stack, const std::string& user) {
  Client c;
  auto ch = [](const std::string& a) {
    return grpc::CreateChannel(a, grpc::InsecureChannelCredentials());
  };
  c.auth = ch(stack.Grpc("auth-token-exchange"));
  c.upload = ch(stack.Grpc("upload"));
  c.catalog = ch(stack.Grpc("media-catalog"));
  grpc::ClientContext m;
  auth::v1::MintIdTokenRequest mint;
  mint.set_user(user);
  auth::v1::MintIdTokenResponse minted;
  if (!auth::v1::DevIdentityProvider::NewStub(c.auth)->MintIdToken(&m, mint, &minted).ok()) {
    Die("MintIdToken");
  }
  grpc::ClientContext x;
  auth::v1::ExchangeTokenRequest req;
  req.set_subject_token(minted.id_token());
  req.set_subject_token_type("urn:ietf:params:oauth:token-type:id_token");
  auth::v1::ExchangeTokenResponse resp;
  if (!auth::v1::TokenExchange::NewStub(c.auth)->ExchangeToken(&x, req, &resp).ok()) {
    Die("ExchangeToken");
  }
  c.token = resp.access_token();
  return c;
}

// Uploads `data`; returns the media name once the Write is answered
// (committed), and that moment.
std::pair<std::string, absl::Time> Upload(const Client& c, const std::string& data,
                                          const std::string& sha256) {
  auto stub = upload::v1::Upload::NewStub(c.upload);
  upload::v1::UploadSession session;
  grpc::ClientContext cc;
  cc.AddMetadata("authorization", "Bearer " + c.token);
  upload::v1::CreateUploadRequest create;
  create.set_title("bench");
  create.set_content_type("video/mp4");
  create.set_total_size(data.size());
  if (auto s = stub->CreateUpload(&cc, create, &session); !s.ok()) Die(s.error_message());
  grpc::ClientContext wc;
  wc.AddMetadata("authorization", "Bearer " + c.token);
  upload::v1::WriteResponse resp;
  auto writer = stub->Write(&wc, &resp);
  upload::v1::WriteRequest w;
  w.set_upload(session.name());
  w.set_data(data);
  w.set_finish_write(true);
  w.set_sha256(sha256);
  writer->Write(w);
  writer->WritesDone();
  if (auto s = writer->Finish(); !s.ok()) Die(s.error_message());
  return {resp.committed().media(), absl::Now()};
}

// Every change of the person's media, timestamped as it is pushed.
class Feed {
 public:
  explicit Feed(const Client& c) : stub_(catalog::v1::MediaCatalog::NewStub(c.catalog)) {
    ctx_.AddMetadata("authorization", "Bearer " + c.token);
    catalog::v1::WatchMediaRequest req;
    req.set_name("media/-");
    reader_ = stub_->WatchMedia(&ctx_, req);
    thread_ = std::thread([this] {
      Media m;
      while (reader_->Read(&m)) {
        absl::MutexLock lock(&mu_);
        seen_.emplace(m.name(), absl::Now());
        if (m.state() == catalog::v1::READY || m.state() == catalog::v1::FAILED) {
          done_[m.name()] = {absl::Now(), m.state()};
        }
      }
    });
  }
  ~Feed() {
    ctx_.TryCancel();
    thread_.join();
    reader_->Finish();
  }
  // When `name` was first seen (waits up to `timeout`).
  absl::Time Seen(const std::string& name, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return seen_.count(name) > 0; };
    mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
    auto it = seen_.find(name);
    return it == seen_.end() ? absl::InfiniteFuture() : it->second;
  }
  std::pair<absl::Time, catalog::v1::MediaState> Done(const std::string& name,
                                                      absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_.count(name) > 0; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    auto it = done_.find(name);
    if (it == done_.end()) return {absl::InfiniteFuture(), catalog::v1::MEDIA_STATE_UNSPECIFIED};
    return it->second;
  }

 private:
  std::unique_ptr<catalog::v1::MediaCatalog::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<Media>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::map<std::string, absl::Time> seen_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<absl::Time, catalog::v1::MediaState>> done_ ABSL_GUARDED_BY(mu_);
};

// Nearest rank: the smallest value with at least p% of them at or below it.
double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  const double rank = std::ceil(p / 100 * v.size());
  const size_t i = std::clamp<size_t>(static_cast<size_t>(rank), 1, v.size()) - 1;
  return v[i];
}

// utime+stime (+ waited-for children) of a process, in seconds.
double CpuSeconds(pid_t pid) {
  const std::string stat = ReadAll(absl::StrCat("/proc/", pid, "/stat"));
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> f = absl::StrSplit(stat.substr(close + 2), ' ');
  // After "pid (comm) ": state=0 ... utime=11 stime=12 cutime=13 cstime=14.
  double ticks = 0;
  for (int i : {11, 12, 13, 14}) ticks += std::atof(f[i].c_str());
  return ticks / ::sysconf(_SC_CLK_TCK);
}

}  // namespace
}  // namespace pettube

int main(int argc, char** argv) {
  using namespace pettube;  // NOLINT: main only
  const int n = argc > 1 ? std::atoi(argv[1]) : 100;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 3;
  const int idle_seconds = argc > 3 ? std::atoi(argv[3]) : 30;
  const std::string runfiles = absl::StrCat(argv[0], ".runfiles/pettube");
  char tmpl[] = "/tmp/flow-bench-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  std::printf("flow_bench: %d control-path uploads, %d READY runs, %d s idle; %ld cores; in %s\n",
              n, runs, idle_seconds, ::sysconf(_SC_NPROCESSORS_ONLN), dir.c_str());

  // 1. Control path, no coordinator: nothing but upload -> broker -> catalog.
  {
    const std::string clip = ReadAll(MakeClip(dir, "160x120", 0.5));
    auto sha = cli::Sha256OfFile(MakeClip(dir, "160x120", 0.5));
    auto stack = e2e::LocalStack::Start(dir + "/control", runfiles,
                                        {"auth-token-exchange", "broker", "upload", "media-catalog"});
    if (!stack.ok()) Die(std::string(stack.status().message()));
    Client c = SignIn(**stack, "bench-control");
    Feed feed(c);
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
      auto [media, committed] = Upload(c, clip, *sha);
      const absl::Time seen = feed.Seen(media, absl::Seconds(10));
      if (seen == absl::InfiniteFuture()) Die(absl::StrCat(media, " never reached the catalog"));
      ms.push_back(absl::ToDoubleMilliseconds(seen - committed));
    }
    std::printf("\n%-52s %8s %8s %8s %8s %8s\n", "ROW", "N", "P50", "P90", "P99", "MAX");
    std::printf("%-52s %8d %8.2f %8.2f %8.2f %8.2f  ms (%zu B each)\n",
                "upload committed -> catalog record visible", n, Percentile(ms, 50),
                Percentile(ms, 90), Percentile(ms, 99), Percentile(ms, 100), clip.size());
  }

  // 2 and 3. Full stack as scripts/up.sh runs it: workers from the supervisor.
  {
    const std::string path = MakeClip(dir, "640x360", 3);
    const std::string clip = ReadAll(path);
    auto sha = cli::Sha256OfFile(path);
    auto stack = e2e::LocalStack::Start(
        dir + "/full", runfiles,
        {"auth-token-exchange", "broker", "upload", "media-catalog", "transcode-coordinator"});
    if (!stack.ok()) Die(std::string(stack.status().message()));
    if (auto s = (*stack)->StartService("transcode-supervisor"); !s.ok()) {
      Die(std::string(s.message()));
    }
    Client c = SignIn(**stack, "bench-ready");
    Feed feed(c);
    std::vector<double> secs;
    for (int i = 0; i < runs; ++i) {
      auto [media, committed] = Upload(c, clip, *sha);
      auto [done, state] = feed.Done(media, absl::Minutes(5));
      if (state != catalog::v1::READY) Die(absl::StrCat(media, " did not become READY"));
      secs.push_back(absl::ToDoubleSeconds(done - committed));
    }
    std::printf("%-52s %8d %8.2f %8s %8s %8.2f  s (3 s 640x360 clip, %zu B)\n",
                "upload committed -> READY (demo clip)", runs, Percentile(secs, 50), "-", "-",
                Percentile(secs, 100), clip.size());

    // Idle: let idle workers exit (the supervisor's --worker_idle_exit,
    // 10 s), then measure a window in which nothing is asked of anyone.
    std::this_thread::sleep_for(std::chrono::seconds(15));
    std::map<std::string, double> before;
    const std::vector<std::string> names = {"auth-token-exchange", "broker", "upload",
                                            "media-catalog", "transcode-coordinator",
                                            "transcode-supervisor"};
    for (const auto& s : names) before[s] = CpuSeconds((*stack)->Pid(s));
    std::this_thread::sleep_for(std::chrono::seconds(idle_seconds));
    double total = 0;
    std::printf("\nidle CPU over %d s (target: under 0.2 s for all together)\n", idle_seconds);
    for (const auto& s : names) {
      const double used = CpuSeconds((*stack)->Pid(s)) - before[s];
      total += used;
      std::printf("  %-24s %6.3f s\n", s.c_str(), used);
    }
    std::printf("  %-24s %6.3f s\n", "all", total);
  }
  return 0;
}
