// broker_bench: one measurement of the PetTube broker or NATS JetStream per
// run, printed as a `RESULT key=value ...` line; `--row=table` turns the
// collected lines into the comparison table (a cell measured more than once
// shows its median). Driven by
// tests/load/run_broker_bench.sh, which starts and stops the servers:
//
//   broker_bench --row=publish --system=pettube --peer=pettube
//       --target=127.0.0.1:PORT --payload=512 --producers=4
//   broker_bench --row=table --results=results.txt
//
// Rows: disk, publish, preload (untimed), consume, latency, backlog, idle.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/load/bench_peer.h"
#include "tests/load/host_probes.h"
#include "tests/load/jetstream_peer.h"
#include "tests/load/pettube_peer.h"

ABSL_FLAG(std::string, row, "", "disk|publish|preload|consume|latency|backlog|idle|table");
ABSL_FLAG(std::string, system, "pettube", "pettube or jetstream: which client to use");
ABSL_FLAG(std::string, peer, "", "label of the server configuration in the RESULT line");
ABSL_FLAG(std::string, target, "", "pettube: host:port; jetstream: nats://host:port");
ABSL_FLAG(int, server_pid, 0, "server process, for backlog (RSS) and idle (CPU) rows");
ABSL_FLAG(int, payload, 512, "payload bytes per event");
ABSL_FLAG(int, producers, 1, "concurrent producers");
ABSL_FLAG(int, window, 256, "unacked events per producer");
ABSL_FLAG(int64_t, events, 100000, "events to publish (publish: at most), pre-load or consume");
ABSL_FLAG(double, max_seconds, 10, "publish: stop sending after this long");
ABSL_FLAG(int, consumers, 1, "consumers, each on its own subscription");
ABSL_FLAG(int, credits, 1024, "unacked deliveries per consumer");
ABSL_FLAG(int, rate, 1000, "latency: events per second");
ABSL_FLAG(double, seconds, 10, "latency: publishing time; disk: probe time");
ABSL_FLAG(int64_t, warmup_events, 500, "latency: first deliveries left out");
ABSL_FLAG(double, idle_seconds, 30, "idle: CPU measured over this long");
ABSL_FLAG(bool, stalled_consumer, false,
          "backlog: attach one consumer with 1 credit that never acks");
ABSL_FLAG(std::string, dir, "", "disk: directory on the disk under test");
ABSL_FLAG(std::string, results, "", "table: file with RESULT lines");

namespace pettube::load {
namespace {

std::string Mib(int64_t kib) { return absl::StrFormat("%.1f", static_cast<double>(kib) / 1024); }

void PrintResult(const std::vector<std::pair<std::string, std::string>>& fields,
                 const absl::Status& status = absl::OkStatus()) {
  std::string line = "RESULT";
  for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", v);
  if (!status.ok()) absl::StrAppend(&line, " error=", status.ToString());
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

std::unique_ptr<Peer> MakePeer() {
  const std::string target = absl::GetFlag(FLAGS_target);
  if (absl::GetFlag(FLAGS_system) == "jetstream") return std::make_unique<JetStreamPeer>(target);
  return std::make_unique<PetTubePeer>(target);
}

std::vector<std::pair<std::string, std::string>> Key(const std::string& row, int n) {
  return {{"row", row},
          {"peer", absl::GetFlag(FLAGS_peer)},
          {"payload", absl::StrCat(absl::GetFlag(FLAGS_payload))},
          {"n", absl::StrCat(n)}};
}

void AddRate(std::vector<std::pair<std::string, std::string>>& f, const Rate& r,
             const std::string& unit) {
  f.push_back({"value", absl::StrFormat("%.0f", r.PerSecond())});
  f.push_back({"unit", unit});
  f.push_back({"count", absl::StrCat(r.count)});
  f.push_back({"seconds", absl::StrFormat("%.2f", absl::ToDoubleSeconds(r.elapsed))});
  f.push_back({"errors", absl::StrCat(r.errors)});
}

// Server CPU time over a measurement, when --server_pid is given.
class ServerCpu {
 public:
  ServerCpu() : pid_(absl::GetFlag(FLAGS_server_pid)) {
    if (pid_ > 0) start_ = ReadCpuTime(pid_);
  }
  // Adds server_cpu_s and cpu_us_per_event (per `count`) to `f`.
  void AddTo(std::vector<std::pair<std::string, std::string>>& f, int64_t count) const {
    if (pid_ <= 0 || !start_.ok()) return;
    auto end = ReadCpuTime(pid_);
    if (!end.ok()) return;
    const double used = absl::ToDoubleSeconds(*end - *start_);
    f.push_back({"server_cpu_s", absl::StrFormat("%.2f", used)});
    if (count > 0) {
      f.push_back({"cpu_us_per_event", absl::StrFormat("%.1f", used * 1e6 / count)});
    }
  }

 private:
  const int pid_;
  absl::StatusOr<absl::Duration> start_ = absl::UnknownError("no pid");
};

int RunDisk() {
  const int payload = absl::GetFlag(FLAGS_payload);
  auto f = Key("disk", 1);
  auto rate = AppendSyncRate(absl::GetFlag(FLAGS_dir), payload,
                             absl::Seconds(absl::GetFlag(FLAGS_seconds)));
  if (!rate.ok()) {
    PrintResult(f, rate.status());
    return 1;
  }
  AddRate(f, *rate, "appends/s");
  PrintResult(f);
  return 0;
}

int RunPublish() {
  PublishSpec spec;
  spec.producers = absl::GetFlag(FLAGS_producers);
  spec.window = absl::GetFlag(FLAGS_window);
  spec.payload_bytes = absl::GetFlag(FLAGS_payload);
  spec.events = absl::GetFlag(FLAGS_events);
  spec.max_time = absl::Seconds(absl::GetFlag(FLAGS_max_seconds));
  auto f = Key("publish", spec.producers);
  auto peer = MakePeer();
  ServerCpu cpu;
  auto rate = peer->Publish(spec);
  if (!rate.ok()) {
    PrintResult(f, rate.status());
    return 1;
  }
  AddRate(f, *rate, "events/s");
  cpu.AddTo(f, rate->count);
  PrintResult(f);
  return 0;
}

int RunPreload() {
  PreloadSpec spec;
  spec.subscriptions = absl::GetFlag(FLAGS_consumers);
  spec.payload_bytes = absl::GetFlag(FLAGS_payload);
  spec.events = absl::GetFlag(FLAGS_events);
  spec.producers = absl::GetFlag(FLAGS_producers);
  spec.window = absl::GetFlag(FLAGS_window);
  const absl::Time start = absl::Now();
  auto s = MakePeer()->Preload(spec);
  if (!s.ok()) {
    std::fprintf(stderr, "preload failed: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("preloaded %lld events in %.1f s\n", static_cast<long long>(spec.events),
              absl::ToDoubleSeconds(absl::Now() - start));
  return 0;
}

int RunConsume() {
  ConsumeSpec spec;
  spec.consumers = absl::GetFlag(FLAGS_consumers);
  spec.events = absl::GetFlag(FLAGS_events);
  spec.credits = absl::GetFlag(FLAGS_credits);
  auto f = Key(spec.consumers == 1 ? "drain" : "fanout", spec.consumers);
  auto peer = MakePeer();
  ServerCpu cpu;
  auto rate = peer->Consume(spec);
  if (!rate.ok()) {
    PrintResult(f, rate.status());
    return 1;
  }
  AddRate(f, *rate, "deliveries/s");
  cpu.AddTo(f, rate->count);
  PrintResult(f);
  return 0;
}

int RunLatency() {
  LatencySpec spec;
  spec.payload_bytes = absl::GetFlag(FLAGS_payload);
  spec.rate_per_second = absl::GetFlag(FLAGS_rate);
  spec.duration = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  spec.warmup_events = absl::GetFlag(FLAGS_warmup_events);
  spec.window = absl::GetFlag(FLAGS_window);
  spec.credits = absl::GetFlag(FLAGS_credits);
  auto f = Key("latency", 1);
  auto p = MakePeer()->Latency(spec);
  if (!p.ok()) {
    PrintResult(f, p.status());
    return 1;
  }
  f.push_back({"value", absl::StrFormat("%.3f", p->p50_ms)});
  f.push_back({"unit", "ms"});
  f.push_back({"p99", absl::StrFormat("%.3f", p->p99_ms)});
  f.push_back({"p999", absl::StrFormat("%.3f", p->p999_ms)});
  f.push_back({"max", absl::StrFormat("%.3f", p->max_ms)});
  f.push_back({"samples", absl::StrCat(p->samples)});
  f.push_back({"seconds", absl::StrFormat("%.2f", absl::ToDoubleSeconds(p->span))});
  f.push_back({"errors", absl::StrCat(p->missing)});
  PrintResult(f);
  return 0;
}

int RunBacklog() {
  const int payload = absl::GetFlag(FLAGS_payload);
  const int64_t events = absl::GetFlag(FLAGS_events);
  const bool stalled = absl::GetFlag(FLAGS_stalled_consumer);
  auto f = Key(stalled ? "backlog-stalled" : "backlog", 1);
  const absl::Time start = absl::Now();
  double publish_s = 0;
  absl::StatusOr<Memory> mem = absl::UnknownError("not measured");
  auto backlog = MakePeer()->Backlog(events, payload, stalled, [&] {
    publish_s = absl::ToDoubleSeconds(absl::Now() - start);
    mem = ReadMemory(absl::GetFlag(FLAGS_server_pid));
  });
  if (!backlog.ok()) {
    PrintResult(f, backlog.status());
    return 1;
  }
  if (!mem.ok()) {
    PrintResult(f, mem.status());
    return 1;
  }
  f.push_back({"value", Mib(mem->rss_kib)});
  f.push_back({"unit", "MiB"});
  f.push_back({"hwm", Mib(mem->hwm_kib)});
  f.push_back({"backlog", absl::StrCat(*backlog)});
  f.push_back({"publish_seconds", absl::StrFormat("%.1f", publish_s)});
  f.push_back({"errors", absl::StrCat(*backlog == events ? 0 : 1)});
  PrintResult(f);
  return 0;
}

int RunIdle() {
  const int consumers = absl::GetFlag(FLAGS_consumers);
  const int pid = absl::GetFlag(FLAGS_server_pid);
  auto f = Key("idle", consumers);
  auto idle = MakePeer()->AttachIdle(consumers, absl::GetFlag(FLAGS_credits));
  if (!idle.ok()) {
    PrintResult(f, idle.status());
    return 1;
  }
  // Let attach-time work (and any start-up compaction) settle first.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto before = ReadCpuTime(pid);
  std::this_thread::sleep_for(
      std::chrono::milliseconds(static_cast<int64_t>(absl::GetFlag(FLAGS_idle_seconds) * 1000)));
  auto after = ReadCpuTime(pid);
  if (!before.ok() || !after.ok()) {
    PrintResult(f, before.ok() ? after.status() : before.status());
    return 1;
  }
  f.push_back({"value", absl::StrFormat("%.2f", absl::ToDoubleSeconds(*after - *before))});
  f.push_back({"unit", "cpu-s"});
  f.push_back({"seconds", absl::StrFormat("%.0f", absl::GetFlag(FLAGS_idle_seconds))});
  f.push_back({"errors", "0"});
  PrintResult(f);
  return 0;
}

// ---------------------------------------------------------------- table

struct Result {
  std::map<std::string, std::string> fields;
  std::string error;
  std::string Get(const std::string& k) const {
    auto it = fields.find(k);
    return it == fields.end() ? "" : it->second;
  }
};

std::vector<Result> ReadResults(const std::string& path) {
  std::vector<Result> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("RESULT ", 0) != 0) continue;
    Result r;
    std::string rest = line.substr(7);
    if (size_t e = rest.find(" error="); e != std::string::npos) {
      r.error = rest.substr(e + 7);
      rest = rest.substr(0, e);
    }
    for (absl::string_view kv : absl::StrSplit(rest, ' ', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      r.fields[p.first] = p.second;
    }
    out.push_back(std::move(r));
  }
  return out;
}

double ValueOf(const Result& r) {
  double v = 0;
  (void)absl::SimpleAtod(r.Get("value"), &v);
  return v;
}

// The cell for one measurement: its value(s), or why there is none.
std::string Cell(const Result* r) {
  if (r == nullptr) return "-";
  if (!r->error.empty()) return "FAILED";
  std::string cell;
  const std::string row = r->Get("row");
  if (row == "latency") {
    auto ms = [](const std::string& v) {
      double d = 0;
      (void)absl::SimpleAtod(v, &d);
      return absl::StrFormat(d < 10 ? "%.2f" : "%.0f", d);
    };
    cell = absl::StrCat(ms(r->Get("value")), " / ", ms(r->Get("p99")), " / ",
                        ms(r->Get("p999")));
  } else if (row.rfind("backlog", 0) == 0) {
    cell = absl::StrCat(r->Get("value"), " / ", r->Get("hwm"));
  } else {
    cell = r->Get("value");
  }
  const std::string errors = r->Get("errors");
  if (!errors.empty() && errors != "0") absl::StrAppend(&cell, " (", errors, " err)");
  return cell;
}

int RunTable() {
  const std::vector<Result> results = ReadResults(absl::GetFlag(FLAGS_results));
  // Every measurement of one cell, in the order they were taken (ROUNDS
  // repeats the publish rows).
  auto find_all = [&](const std::string& row, const std::string& peer, const std::string& payload,
                      const std::string& n) {
    std::vector<const Result*> found;
    for (const Result& r : results) {
      if (r.Get("row") == row && r.Get("peer") == peer && r.Get("payload") == payload &&
          r.Get("n") == n) {
        found.push_back(&r);
      }
    }
    return found;
  };
  // The cell's measurement: the only one, or the one with the median value
  // (the lower middle of an even count); a failed one wins, so it shows.
  auto find = [&](const std::string& row, const std::string& peer, const std::string& payload,
                  const std::string& n) -> const Result* {
    std::vector<const Result*> found = find_all(row, peer, payload, n);
    if (found.empty()) return nullptr;
    for (const Result* r : found) {
      if (!r->error.empty()) return r;
    }
    std::sort(found.begin(), found.end(),
              [](const Result* a, const Result* b) { return ValueOf(*a) < ValueOf(*b); });
    return found[(found.size() - 1) / 2];
  };
  struct Line {
    std::string title, row, n;
    std::vector<std::string> payloads;
  };
  const std::vector<Line> lines = {
      {"disk append+fdatasync, appends/s (ceiling)", "disk", "1", {"512", "4096"}},
      {"publish w/ acks, 1 producer, events/s", "publish", "1", {"512", "4096"}},
      {"publish w/ acks, 4 producers, events/s", "publish", "4", {"512", "4096"}},
      {"drain 1 durable consumer, acked events/s", "drain", "1", {"512", "4096"}},
      {"latency @1000/s, p50 / p99 / p99.9 ms", "latency", "1", {"512", "4096"}},
      {"fan-out to 4 subscriptions, deliveries/s", "fanout", "4", {"512", "4096"}},
      {"backlog 1M x 1 KiB: RSS / peak MiB", "backlog", "1", {"1024"}},
      {"same, 1 stalled consumer attached", "backlog-stalled", "1", {"1024"}},
      {"idle, 4 subscribers attached: CPU s / 30 s", "idle", "4", {"512"}},
  };
  const std::vector<std::pair<std::string, std::string>> peers = {
      {"pettube", "PetTube (fsync, group commit)"},
      {"jetstream", "JetStream 2.9 default"},
      {"jetstream-sync", "JetStream 2.9 + chattr +S"},
  };
  auto payload_name = [](const std::string& p) {
    if (p == "4096") return std::string("4 KiB");
    if (p == "1024") return std::string("1 KiB");
    return p + " B";
  };
  std::printf("| %-44s | %-7s |", "row", "payload");
  for (const auto& [id, label] : peers) std::printf(" %-29s |", label.c_str());
  std::printf("\n|%s|%s|", std::string(46, '-').c_str(), std::string(9, '-').c_str());
  for (size_t i = 0; i < peers.size(); ++i) std::printf("%s|", std::string(31, '-').c_str());
  std::printf("\n");
  for (const Line& line : lines) {
    for (const std::string& payload : line.payloads) {
      std::printf("| %-44s | %-7s |", line.title.c_str(), payload_name(payload).c_str());
      for (const auto& [id, label] : peers) {
        const std::string peer = line.row == "disk" ? "disk" : id;
        // The disk row is one measurement: the ceiling for every peer.
        const std::string cell = Cell(find(line.row, peer, payload, line.n));
        std::printf(" %-29s |", cell.c_str());
      }
      std::printf("\n");
    }
  }
  // Server CPU per event: where the time goes on this 2-core machine.
  std::printf("\nServer CPU time per event (µs; publish: per event acked, drain/fan-out: per "
              "delivery acked)\n");
  std::printf("| %-44s | %-7s |", "row", "payload");
  for (const auto& [id, label] : peers) std::printf(" %-29s |", label.c_str());
  std::printf("\n|%s|%s|", std::string(46, '-').c_str(), std::string(9, '-').c_str());
  for (size_t i = 0; i < peers.size(); ++i) std::printf("%s|", std::string(31, '-').c_str());
  std::printf("\n");
  for (const Line& line : lines) {
    if (line.row != "publish" && line.row != "drain" && line.row != "fanout") continue;
    const std::string title = line.title.substr(0, line.title.rfind(", "));
    for (const std::string& payload : line.payloads) {
      std::printf("| %-44s | %-7s |", title.c_str(), payload_name(payload).c_str());
      for (const auto& [id, label] : peers) {
        const Result* r = find(line.row, id, payload, line.n);
        const std::string cell =
            r == nullptr || !r->error.empty() ? "-" : r->Get("cpu_us_per_event");
        std::printf(" %-29s |", cell.c_str());
      }
      std::printf("\n");
    }
  }
  // With ROUNDS > 1: each round's PetTube / JetStream default ratio for the
  // publish rows (the k-th measurement of each, taken one after the other),
  // and their median: the figure to compare, as one pair moves with the
  // machine.
  bool rounds_header = false;
  for (const Line& line : lines) {
    if (line.row != "publish") continue;
    for (const std::string& payload : line.payloads) {
      const auto ours = find_all(line.row, "pettube", payload, line.n);
      const auto theirs = find_all(line.row, "jetstream", payload, line.n);
      const size_t rounds = std::min(ours.size(), theirs.size());
      if (rounds < 2) continue;
      if (!rounds_header) {
        std::printf("\nPublish rows, PetTube / JetStream default, round by round\n");
        rounds_header = true;
      }
      std::vector<double> ratios;
      std::string cells;
      for (size_t k = 0; k < rounds; ++k) {
        const double theirs_value = ValueOf(*theirs[k]);
        if (!ours[k]->error.empty() || !theirs[k]->error.empty() || theirs_value <= 0) continue;
        ratios.push_back(ValueOf(*ours[k]) / theirs_value);
        absl::StrAppend(&cells, cells.empty() ? "" : " ", absl::StrFormat("%.2f", ratios.back()));
      }
      if (ratios.empty()) continue;
      std::sort(ratios.begin(), ratios.end());
      const size_t m = ratios.size();
      const double median = m % 2 ? ratios[m / 2] : (ratios[m / 2 - 1] + ratios[m / 2]) / 2;
      const std::string title = line.title.substr(0, line.title.rfind(", "));
      std::printf("  %s, %s: %s; median %.2f over %zu rounds\n", title.c_str(),
                  payload_name(payload).c_str(), cells.c_str(), median, m);
    }
  }
  bool any_error = false;
  for (const Result& r : results) {
    if (r.error.empty()) continue;
    if (!any_error) std::printf("\nFailed measurements:\n");
    any_error = true;
    std::printf("  %s %s payload=%s n=%s: %s\n", r.Get("row").c_str(), r.Get("peer").c_str(),
                r.Get("payload").c_str(), r.Get("n").c_str(), r.error.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace pettube::load

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string row = absl::GetFlag(FLAGS_row);
  using namespace pettube::load;  // NOLINT: main only
  if (row == "disk") return RunDisk();
  if (row == "publish") return RunPublish();
  if (row == "preload") return RunPreload();
  if (row == "consume") return RunConsume();
  if (row == "latency") return RunLatency();
  if (row == "backlog") return RunBacklog();
  if (row == "idle") return RunIdle();
  if (row == "table") return RunTable();
  std::fprintf(stderr, "broker_bench: --row must be one of disk, publish, preload, consume, "
                       "latency, backlog, idle, table; got \"%s\"\n",
               row.c_str());
  return 2;
}
