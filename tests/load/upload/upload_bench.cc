// Client side of tests/load/upload/run_upload_bench.sh. Modes:
//   --mode=token  --auth=ADDR --user=NAME         prints "TOKEN IDENTITY_ID"
//   --mode=upload --upload=ADDR --token=T --file=F [--concurrency=N]
//                 uploads F N times at once (4 MiB chunks), prints
//                 "bytes seconds MiB/s key..." for the whole batch
//   --mode=sign   --keys=FILE --path=BUCKET/KEY   prints a signed path
//   --mode=ranged --http=HOST:PORT --path=P --size=BYTES --rate=R --seconds=S
//                 open-loop 1 MiB ranged GETs at random offsets, R per
//                 second, each on its own connection; latency is measured
//                 from when the request was due (no coordinated omission);
//                 prints "p50_ms p99_ms max_ms errors"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/signed_url/url_signer.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"
#include "services/upload/sha256_state.h"

ABSL_FLAG(std::string, mode, "", "token | upload | sign | ranged");
ABSL_FLAG(std::string, auth, "", "auth-token-exchange address");
ABSL_FLAG(std::string, user, "bench", "dev identity provider user");
ABSL_FLAG(std::string, upload, "", "upload service address");
ABSL_FLAG(std::string, token, "", "access token");
ABSL_FLAG(std::string, file, "", "file to upload");
ABSL_FLAG(int, concurrency, 1, "uploads at once");
ABSL_FLAG(std::string, keys, "", "url signing keys file");
ABSL_FLAG(std::string, path, "", "object path or URL path");
ABSL_FLAG(std::string, http, "", "object server HOST:PORT");
ABSL_FLAG(int64_t, size, 0, "object size");
ABSL_FLAG(int, rate, 200, "requests per second");
ABSL_FLAG(int, seconds, 10, "duration");

namespace {

using pettube::upload::v1::Upload;

int Token() {
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_auth), grpc::InsecureChannelCredentials());
  grpc::ClientContext mint_ctx;
  pettube::auth::v1::MintIdTokenRequest mint;
  mint.set_user(absl::GetFlag(FLAGS_user));
  pettube::auth::v1::MintIdTokenResponse id;
  if (!pettube::auth::v1::DevIdentityProvider::NewStub(channel)->MintIdToken(&mint_ctx, mint, &id).ok()) {
    std::cerr << "MintIdToken failed\n";
    return 1;
  }
  grpc::ClientContext ctx;
  pettube::auth::v1::ExchangeTokenRequest req;
  req.set_subject_token(id.id_token());
  req.set_subject_token_type("urn:ietf:params:oauth:token-type:id_token");
  req.mutable_lifetime()->set_seconds(3600);
  pettube::auth::v1::ExchangeTokenResponse resp;
  grpc::Status s = pettube::auth::v1::TokenExchange::NewStub(channel)->ExchangeToken(&ctx, req, &resp);
  if (!s.ok()) {
    std::cerr << "ExchangeToken: " << s.error_message() << "\n";
    return 1;
  }
  std::cout << resp.access_token() << " " << resp.identity().name().substr(11) << "\n";
  return 0;
}

// Streams the file from disk in 4 MiB chunks, hashing as it goes.
absl::StatusOr<std::string> UploadOne(Upload::Stub* stub, const std::string& path, int64_t size,
                                      const std::string& token) {
  grpc::ClientContext create_ctx;
  create_ctx.AddMetadata("authorization", "Bearer " + token);
  pettube::upload::v1::CreateUploadRequest create;
  create.set_title("bench");
  create.set_total_size(size);
  pettube::upload::v1::UploadSession session;
  grpc::Status s = stub->CreateUpload(&create_ctx, create, &session);
  if (!s.ok()) return absl::UnknownError("CreateUpload: " + s.error_message());
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  pettube::upload::v1::WriteResponse response;
  auto writer = stub->Write(&ctx, &response);
  std::ifstream in(path, std::ios::binary);
  pettube::upload::Sha256State sha;
  int64_t offset = 0;
  pettube::upload::v1::WriteRequest req;
  req.set_upload(session.name());
  std::string* data = req.mutable_data();
  while (offset < size) {
    data->resize(std::min<int64_t>(4 << 20, size - offset));
    in.read(data->data(), data->size());
    sha.Update(*data);
    req.set_write_offset(offset);
    offset += data->size();
    if (offset == size) {
      req.set_finish_write(true);
      req.set_sha256(sha.HexDigest());
    }
    if (!writer->Write(req)) break;
    req.clear_upload();
  }
  writer->WritesDone();
  s = writer->Finish();
  if (!s.ok()) return absl::UnknownError("Write: " + s.error_message());
  return response.committed().key();
}

int UploadMode() {
  const std::string path = absl::GetFlag(FLAGS_file);
  std::ifstream probe(path, std::ios::binary | std::ios::ate);
  const int64_t size = probe.tellg();
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_upload), grpc::InsecureChannelCredentials());
  auto stub = Upload::NewStub(channel);
  const int n = absl::GetFlag(FLAGS_concurrency);
  std::vector<std::thread> threads;
  std::vector<std::string> keys(n);
  std::atomic<int> failures{0};
  const absl::Time start = absl::Now();
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      auto key = UploadOne(stub.get(), path, size, absl::GetFlag(FLAGS_token));
      if (key.ok()) {
        keys[i] = *key;
      } else {
        std::cerr << key.status() << "\n";
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  if (failures > 0) return 1;
  std::cout << size * n << " " << secs << " " << (size * n / secs / (1 << 20));
  for (const auto& k : keys) std::cout << " " << k;
  std::cout << "\n";
  return 0;
}

int Sign() {
  auto keys = pettube::signed_url::KeyRing::FromFile("keys", absl::GetFlag(FLAGS_keys));
  if (!keys.ok()) {
    std::cerr << keys.status() << "\n";
    return 1;
  }
  pettube::signed_url::UrlSigner signer(*std::move(keys));
  const std::string path = absl::GetFlag(FLAGS_path);
  std::cout << signer.SignedPath(path, path, absl::Now() + absl::Hours(2)) << "\n";
  return 0;
}

// One GET with a Range header on a fresh connection; reads to the end.
bool RangedGet(const sockaddr_in& addr, const std::string& request, size_t want) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return false;
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  static thread_local std::vector<char> buf(1 << 20);
  size_t got = 0;
  ssize_t n;
  while ((n = ::recv(fd, buf.data(), buf.size(), 0)) > 0) got += n;
  ::close(fd);
  return got >= want;
}

int Ranged() {
  const std::string http = absl::GetFlag(FLAGS_http);
  const size_t colon = http.rfind(':');
  int port = 0;
  (void)absl::SimpleAtoi(http.substr(colon + 1), &port);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, http.substr(0, colon).c_str(), &addr.sin_addr);
  const int64_t size = absl::GetFlag(FLAGS_size);
  const int64_t span = 1 << 20;
  const int rate = absl::GetFlag(FLAGS_rate);
  const int total = rate * absl::GetFlag(FLAGS_seconds);
  const absl::Duration interval = absl::Seconds(1) / rate;
  std::mutex mu;
  std::vector<double> latencies;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  std::mt19937_64 rng(42);
  const absl::Time start = absl::Now() + absl::Milliseconds(100);
  // One thread per request in flight at most 64: requests are due on a
  // fixed schedule whatever the server does.
  std::atomic<int> next{0};
  const int workers = 64;
  std::vector<int64_t> offsets(total);
  for (auto& o : offsets) o = static_cast<int64_t>(rng() % (size - span));
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      while (true) {
        const int i = next.fetch_add(1);
        if (i >= total) return;
        const absl::Time due = start + interval * i;
        const absl::Duration wait = due - absl::Now();
        if (wait > absl::ZeroDuration()) absl::SleepFor(wait);  // the schedule, not a poll
        const std::string request = absl::StrCat(
            "GET ", absl::GetFlag(FLAGS_path), " HTTP/1.1\r\nHost: ", http,
            "\r\nConnection: close\r\nRange: bytes=", offsets[i], "-", offsets[i] + span - 1,
            "\r\n\r\n");
        const bool ok = RangedGet(addr, request, span);
        const double ms = absl::ToDoubleMilliseconds(absl::Now() - due);
        std::lock_guard<std::mutex> lock(mu);
        if (ok) latencies.push_back(ms); else ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return latencies.empty() ? 0.0 : latencies[std::min(latencies.size() - 1,
                                                        static_cast<size_t>(p * latencies.size()))];
  };
  std::printf("%.2f %.2f %.2f %d\n", pct(0.50), pct(0.99), latencies.empty() ? 0.0 : latencies.back(),
              errors.load());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode == "token") return Token();
  if (mode == "upload") return UploadMode();
  if (mode == "sign") return Sign();
  if (mode == "ranged") return Ranged();
  std::cerr << "--mode: token, upload, sign or ranged\n";
  return 2;
}
