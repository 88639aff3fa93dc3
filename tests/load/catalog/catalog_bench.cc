// The catalog benchmark's tool, one subcommand per step; run_catalog_bench.sh
// starts the processes and prints the table.
//
//   catalog_bench seed --data_dir=D --records=N --owners=O
//       writes N READY records of O owners straight into a RocksDB store
//   catalog_bench trivial --listen=127.0.0.1:0
//       a MediaCatalog whose GetMedia answers one pre-rendered Media of the
//       catalog's size from memory (the comparison server)
//   catalog_bench load --target=H:P --method=get|list --token_file=F
//       --concurrency=C --seconds=S --records=N --owners=O
//       C calls in flight for S seconds; prints calls/s and latencies
//   catalog_bench backlog --broker=H:P --auth=H:P --client_id=I
//       --secret_file=F --events=E
//       creates subscriptions/media-catalog (run it as the catalog's workload:
//       the subscription is then the catalog's own) and publishes E events
//   catalog_bench drain --broker=H:P --auth=H:P --client_id=I
//       --secret_file=F --events=E
//       waits (pushed stats) until the backlog is 0; prints events/s
//   catalog_bench token --auth=H:P --client_id=I --secret_file=F --scopes=a,b
//       prints a workload access token
//   catalog_bench readpath --data_dir=D --records=N --seconds=S
//       in-process, one thread, no gRPC: CPU per store read (RocksDB Get
//       and parse) and per render (the response and its signed URLs) of
//       random records of a seeded store (open a copy: it opens read-write)

#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "libs/auth/credentials/token_source.h"
#include "libs/broker_client/publisher.h"
#include "libs/signed_url/url_signer.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "proto/pettube/catalog/v1/catalog.grpc.pb.h"
#include "services/media-catalog/event_subscription.h"
#include "services/media-catalog/media_event.h"
#include "services/media-catalog/media_view.h"
#include "services/media-catalog/rocksdb_media_store.h"
#include "services/media-catalog/test_events.h"

ABSL_FLAG(std::string, data_dir, "", "seed: store directory");
ABSL_FLAG(int64_t, records, 1000000, "records seeded / addressed");
ABSL_FLAG(int, owners, 10000, "owners the records are spread over");
ABSL_FLAG(std::string, listen, "127.0.0.1:0", "trivial: address");
ABSL_FLAG(std::string, target, "", "load: server address");
ABSL_FLAG(std::string, method, "get", "load: get or list");
ABSL_FLAG(std::string, token_file, "", "load: bearer token file");
ABSL_FLAG(int, concurrency, 32, "load: calls in flight");
ABSL_FLAG(int, seconds, 10, "load: duration");
ABSL_FLAG(std::string, broker, "", "broker address");
ABSL_FLAG(std::string, auth, "", "auth-token-exchange address");
ABSL_FLAG(std::string, client_id, "", "workload client id");
ABSL_FLAG(std::string, secret_file, "", "workload client secret file");
ABSL_FLAG(std::string, scopes, "", "token: comma-separated scopes");
ABSL_FLAG(int64_t, events, 20000, "backlog/drain: events");
ABSL_FLAG(int, block_cache_mb, 128, "readpath: the store's block cache");
ABSL_FLAG(int, row_cache_mb, 0, "readpath: the store's row cache");
ABSL_FLAG(bool, warm, false, "readpath: read every record once, in order, before measuring");

namespace pettube::catalog {
namespace {

namespace t = ::pettube::catalog::testing;

std::string MediaId(int64_t i) { return absl::StrFormat("m%08d", i); }
std::string OwnerId(int64_t i) { return absl::StrFormat("owner%06d", i); }

StoredMedia SeedRecord(int64_t i, int owners) {
  const std::string id = MediaId(i);
  const std::string owner = OwnerId(i % owners);
  StoredMedia m;
  m.set_media_id(id);
  for (const auto& e : {t::Uploaded(id, owner, absl::StrCat("clip number ", i),
                                    absl::FromUnixSeconds(1767225600 + i)),
                        t::JobCompleted(id, owner, "720p"), t::JobCompleted(id, owner, "480p"),
                        t::Ready(id, owner)}) {
    auto decoded = DecodeEvent(e);
    if (decoded.ok()) MergeEvent(*decoded, &m);
  }
  m.set_version(1);
  return m;
}

int Seed() {
  RocksDbMediaStore::Options unsynced;
  unsynced.sync = false;
  auto store = RocksDbMediaStore::Open(absl::GetFlag(FLAGS_data_dir), unsynced);
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    return 1;
  }
  const int64_t n = absl::GetFlag(FLAGS_records);
  const int owners = absl::GetFlag(FLAGS_owners);
  const absl::Time start = absl::Now();
  // Seeding cost is not measured; a few threads shorten it.
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> failed{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&] {
      for (int64_t i = next++; i < n; i = next++) {
        if (!(*store)->Write(SeedRecord(i, owners), 0, "").ok()) ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  std::cerr << "seeded " << n << " records in " << absl::Now() - start << ", failed " << failed
            << "\n";
  // A settled store, as a catalog's is after its compactions: otherwise the
  // measured run reads through dozens of level-0 files while it compacts.
  if (absl::Status s = (*store)->CompactAll(); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  std::cerr << "compacted after " << absl::Now() - start << "\n";
  return failed == 0 ? 0 : 1;
}

// The catalog's view with a fresh signing key, as the servers render.
MediaView BenchView() {
  auto ring = signed_url::KeyRing::Parse(signed_url::KeyRing::GenerateText("k1"));
  MediaView::Options view_options;
  view_options.objects_url = "http://127.0.0.1:8081";
  return MediaView(std::make_shared<signed_url::UrlSigner>(*ring), view_options);
}

// Answers GetMedia with one pre-rendered record of the catalog's size.
class TrivialCatalog : public v1::MediaCatalog::CallbackService {
 public:
  explicit TrivialCatalog(v1::Media media) : media_(std::move(media)) {}
  grpc::ServerUnaryReactor* GetMedia(grpc::CallbackServerContext* context,
                                     const v1::GetMediaRequest*, v1::Media* response) override {
    *response = media_;
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const v1::Media media_;
};

int Trivial() {
  const MediaView view = BenchView();
  TrivialCatalog service(view.Render(SeedRecord(12345, 10000)));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (server == nullptr) return 1;
  std::cout << "ready grpc=127.0.0.1:" << port << std::endl;
  server->Wait();
  return 0;
}

// C calls in flight for S seconds, each completion starting the next.
int Load() {
  std::ifstream token_file(absl::GetFlag(FLAGS_token_file));
  std::string token;
  std::getline(token_file, token);
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials());
  auto stub = v1::MediaCatalog::NewStub(channel);
  const bool list = absl::GetFlag(FLAGS_method) == "list";
  const int64_t records = absl::GetFlag(FLAGS_records);
  const int owners = absl::GetFlag(FLAGS_owners);
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const absl::Time end = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_seconds));

  absl::Mutex mu;
  std::vector<double> latencies_ms;
  int64_t errors = 0;
  int64_t bytes = 0;
  std::string first_error;
  int running = concurrency;
  std::mt19937_64 rng(42);

  struct Call {
    grpc::ClientContext ctx;
    v1::GetMediaRequest get;
    v1::Media media;
    v1::ListMediaRequest list_req;
    v1::ListMediaResponse list_resp;
    absl::Time start;
  };
  std::function<void()> issue;
  issue = [&]() {
    auto call = std::make_shared<Call>();
    call->ctx.AddMetadata("authorization", "Bearer " + token);
    {
      absl::MutexLock lock(&mu);
      if (list) {
        call->list_req.set_owner(OwnerId(static_cast<int64_t>(rng() % owners)));
      } else {
        call->get.set_name(absl::StrCat("media/", MediaId(static_cast<int64_t>(rng() % records))));
      }
    }
    call->start = absl::Now();
    auto done = [&, call](grpc::Status s) {
      const absl::Time now = absl::Now();
      bool again;
      {
        absl::MutexLock lock(&mu);
        if (s.ok()) {
          latencies_ms.push_back(absl::ToDoubleMilliseconds(now - call->start));
          bytes = list ? call->list_resp.ByteSizeLong() : call->media.ByteSizeLong();
        } else {
          if (errors++ == 0) first_error = s.error_message();
        }
        again = now < end;
        if (!again) --running;
      }
      if (again) issue();
    };
    if (list) {
      stub->async()->ListMedia(&call->ctx, &call->list_req, &call->list_resp, done);
    } else {
      stub->async()->GetMedia(&call->ctx, &call->get, &call->media, done);
    }
  };
  const absl::Time start = absl::Now();
  for (int i = 0; i < concurrency; ++i) issue();
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* r) { return *r == 0; }, &running));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto pct = [&](double p) {
    if (latencies_ms.empty()) return 0.0;
    return latencies_ms[std::min(latencies_ms.size() - 1,
                                 static_cast<size_t>(p * latencies_ms.size()))];
  };
  std::printf("calls=%zu errors=%lld qps=%.0f p50_ms=%.2f p99_ms=%.2f bytes=%lld\n",
              latencies_ms.size(), static_cast<long long>(errors), latencies_ms.size() / seconds,
              pct(0.50), pct(0.99), static_cast<long long>(bytes));
  if (errors > 0) std::fprintf(stderr, "first error: %s\n", first_error.c_str());
  return 0;
}

std::shared_ptr<auth::WorkloadTokenSource> Tokens(std::vector<std::string> scopes) {
  std::ifstream f(absl::GetFlag(FLAGS_secret_file));
  std::string secret;
  std::getline(f, secret);
  return std::make_shared<auth::WorkloadTokenSource>(
      grpc::CreateChannel(absl::GetFlag(FLAGS_auth), grpc::InsecureChannelCredentials()),
      absl::GetFlag(FLAGS_client_id), std::string(absl::StripAsciiWhitespace(secret)),
      std::move(scopes));
}

int Token() {
  auto tokens = Tokens(absl::StrSplit(absl::GetFlag(FLAGS_scopes), ','));
  auto token = tokens->Token();
  if (!token.ok()) {
    std::cerr << token.status() << "\n";
    return 1;
  }
  std::cout << *token << "\n";
  return 0;
}

int Backlog() {
  // Run with the catalog's credentials: the subscription is then the
  // catalog's own (only its owner may attach to it).
  auto tokens = Tokens({"events.publish", "events.subscribe"});
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_broker), grpc::InsecureChannelCredentials());
  auto configure = [tokens](grpc::ClientContext& ctx) { (void)tokens->Attach(ctx); };
  if (auto s = EnsureSubscription(channel, configure, "subscriptions/media-catalog",
                                  CatalogSubscription(5), absl::Seconds(30));
      !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  broker_client::Publisher::Options po;
  po.configure_context = configure;
  broker_client::Publisher publisher(channel, po);
  const int64_t events = absl::GetFlag(FLAGS_events);
  // Per media: the upload and 9 progress reports of distinct jobs.
  std::atomic<int64_t> failed{0};
  for (int64_t i = 0; i < events; ++i) {
    const std::string id = MediaId(i / 10);
    io::cloudevents::v1::CloudEvent e = i % 10 == 0
                                            ? t::Uploaded(id, OwnerId(i / 10 % 1000), "clip")
                                            : t::JobProgressed(id, absl::StrCat("r", i % 10), 0.5);
    publisher.PublishAsync(std::move(e), [&](absl::StatusOr<broker_client::PublishResult> r) {
      if (!r.ok()) ++failed;
    });
  }
  const absl::Status flushed = publisher.Flush(absl::Seconds(120));
  std::cerr << "published " << events << " events, failed " << failed << ": " << flushed << "\n";
  return flushed.ok() && failed == 0 ? 0 : 1;
}

int Drain() {
  auto tokens = Tokens({"events.subscribe"});
  auto stub = broker::v1::Broker::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_broker), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  (void)tokens->Attach(ctx);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  broker::v1::WatchSubscriptionStatsRequest req;
  req.set_name("subscriptions/media-catalog");
  req.mutable_min_interval()->set_nanos(10'000'000);
  auto stream = stub->WatchSubscriptionStats(&ctx, req);
  broker::v1::SubscriptionStats stats;
  absl::Time first = absl::InfinitePast();
  int64_t first_acked = 0;
  while (stream->Read(&stats)) {
    if (first == absl::InfinitePast() && stats.acked() > 0) {
      first = absl::Now();
      first_acked = stats.acked();
    }
    if (stats.backlog() == 0 && stats.acked() > 0) break;
  }
  const absl::Time last = absl::Now();
  ctx.TryCancel();
  (void)stream->Finish();
  const int64_t counted = stats.acked() - first_acked;
  const double seconds = absl::ToDoubleSeconds(last - first);
  std::printf("events=%lld acked=%lld dead=%lld seconds=%.2f events_per_s=%.0f\n",
              static_cast<long long>(absl::GetFlag(FLAGS_events)),
              static_cast<long long>(stats.acked()),
              static_cast<long long>(stats.dead_letter_count()), seconds,
              seconds > 0 ? counted / seconds : 0.0);
  return 0;
}

double ThreadCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

int ReadPath() {
  RocksDbMediaStore::Options options;
  options.block_cache_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_block_cache_mb)) << 20;
  options.row_cache_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_row_cache_mb)) << 20;
  auto store = RocksDbMediaStore::Open(absl::GetFlag(FLAGS_data_dir), options);
  if (!store.ok()) {
    std::cerr << store.status() << "\n";
    return 1;
  }
  const MediaView view = BenchView();
  const int64_t records = absl::GetFlag(FLAGS_records);
  std::mt19937_64 rng(7);
  if (absl::GetFlag(FLAGS_warm)) {
    StoredMedia media;
    for (int64_t i = 0; i < records; ++i) (void)(*store)->Read(MediaId(i), &media);
  }
  // Alternating timed slices of reads only and of reads with renders, so
  // the machine's drift hits both alike.
  double read_cpu = 0, both_cpu = 0;
  int64_t reads = 0, both = 0, missing = 0, record_bytes = 0;
  const absl::Time end = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_seconds));
  for (int slice = 0; absl::Now() < end; ++slice) {
    const bool render = slice % 2 == 1;
    const double start = ThreadCpuSeconds();
    for (int i = 0; i < 2000; ++i) {
      google::protobuf::Arena arena;
      auto* media = google::protobuf::Arena::CreateMessage<StoredMedia>(&arena);
      const std::string id = MediaId(static_cast<int64_t>(rng() % records));
      if (!(*store)->Read(id, media).ok()) ++missing;
      record_bytes += static_cast<int64_t>(media->ByteSizeLong());
      if (render) {
        auto* out = google::protobuf::Arena::CreateMessage<v1::Media>(&arena);
        view.RenderInto(*media, out);
      }
    }
    (render ? both_cpu : read_cpu) += ThreadCpuSeconds() - start;
    (render ? both : reads) += 2000;
  }
  const double read_us = reads > 0 ? read_cpu / reads * 1e6 : 0;
  const double both_us = both > 0 ? both_cpu / both * 1e6 : 0;
  std::printf(
      "reads=%lld missing=%lld record_bytes=%lld read_us=%.2f render_us=%.2f "
      "read_and_render_us=%.2f\n",
      static_cast<long long>(reads + both), static_cast<long long>(missing),
      static_cast<long long>(reads + both > 0 ? record_bytes / (reads + both) : 0), read_us,
      both_us - read_us, both_us);
  return missing == 0 ? 0 : 1;
}

}  // namespace
}  // namespace pettube::catalog

int main(int argc, char** argv) {
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  // As every PetTube server runs (libs/server's --mutex_deadlock_detection
  // default): the trivial server and the load generator pay what the
  // catalog pays, no more.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (rest.size() < 2) {
    std::cerr << "usage: catalog_bench seed|trivial|load|backlog|drain|token|readpath [flags]\n";
    return 2;
  }
  const std::string cmd = rest[1];
  using namespace pettube::catalog;  // NOLINT
  if (cmd == "seed") return Seed();
  if (cmd == "trivial") return Trivial();
  if (cmd == "load") return Load();
  if (cmd == "backlog") return Backlog();
  if (cmd == "drain") return Drain();
  if (cmd == "token") return Token();
  if (cmd == "readpath") return ReadPath();
  std::cerr << "unknown subcommand " << cmd << "\n";
  return 2;
}
