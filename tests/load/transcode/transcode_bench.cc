// The transcode issue's benchmark, one run, one table (docs/benchmarks.md):
//  1. a 30 s 1080p clip (testsrc2 + sine) through the whole pipeline with
//     2 workers, from upload committed to pettube.media.ready, against the
//     same ffmpeg commands run from a shell script, 2 at a time, on local
//     files (target <= 1.10x, goal 1.03x);
//  2. time to the first playable rendition (first video job.completed);
//  3. the supervisor's time from first backlog to first worker attached
//     (target < 2 s), from the broker's pushed queue stats;
//  4. CPU used by the coordinator and by the supervisor over 30 s with an
//     empty queue (target < 0.05 s each).
// Run through tests/load/transcode/run_transcode_bench.sh.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "libs/broker_client/event_builder.h"
#include "libs/broker_client/stats_watcher.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "services/transcode-coordinator/ladder.h"
#include "services/transcode-coordinator/probe.h"
#include "services/transcode-worker/ffmpeg_commands.h"
#include "services/transcode-worker/subprocess.h"
#include "tests/transcode/transcode_stack.h"

namespace {

namespace ev = ::pettube::events::v1;
using ::pettube::transcode::Subprocess;
using ::pettube::transcode::testing::TranscodeStack;

std::string Quote(const std::string& arg) {
  return absl::StrCat("'", absl::StrReplaceAll(arg, {{"'", "'\\''"}}), "'");
}

std::string ShellLine(const std::vector<std::string>& argv) {
  std::vector<std::string> q;
  for (const auto& a : argv) q.push_back(Quote(a));
  return absl::StrJoin(q, " ");
}

Subprocess::Result Run(std::vector<std::string> argv) {
  Subprocess::Options o;
  o.argv = std::move(argv);
  o.env.push_back("HOME=/tmp");
  auto p = Subprocess::Start(o);
  if (!p.ok()) {
    Subprocess::Result r;
    r.stderr_tail = std::string(p.status().message());
    return r;
  }
  return (*p)->Wait();
}

// utime + stime of a process, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> f = absl::StrSplit(text.substr(close + 2), ' ');
  // Fields after the name: state is [0]; utime [11], stime [12].
  if (f.size() < 13) return -1;
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The work queue's stats every 10 ms, watched as the tester.
pettube::broker_client::StatsWatcher::Options JobQueueWatch(TranscodeStack& stack) {
  pettube::broker_client::StatsWatcher::Options options;
  options.subscription = "subscriptions/transcode-jobs";
  options.min_interval = absl::Milliseconds(10);
  options.configure_context = [t = stack.tester()](grpc::ClientContext& c) {
    (void)t->Attach(c);
  };
  return options;
}

class Stats {
 public:
  explicit Stats(TranscodeStack& stack)
      : watcher_(stack.broker_channel(), JobQueueWatch(stack)) {
    (void)watcher_.Start([this](const pettube::broker_client::SubscriptionStats& s) {
      absl::MutexLock lock(&mu_);
      history_.emplace_back(absl::Now(), s);
    });
  }
  // Time of the first message satisfying `done` after `since`.
  std::optional<absl::Time> WaitFor(
      const std::function<bool(const pettube::broker_client::SubscriptionStats&)>& done,
      absl::Time since, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    std::optional<absl::Time> found;
    struct Args {
      Stats* s;
      const std::function<bool(const pettube::broker_client::SubscriptionStats&)>* done;
      absl::Time since;
      std::optional<absl::Time>* found;
    } args{this, &done, since, &found};
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                               for (const auto& [t, st] : a->s->history_) {
                                 if (t >= a->since && (*a->done)(st)) {
                                   *a->found = t;
                                   return true;
                                 }
                               }
                               return false;
                             },
                             &args),
                         timeout);
    return found;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<absl::Time, pettube::broker_client::SubscriptionStats>> history_
      ABSL_GUARDED_BY(mu_);
  pettube::broker_client::StatsWatcher watcher_;
};

}  // namespace

int main() {
  const int seconds = 30;
  std::fprintf(stderr, "== generating a %d s 1920x1080 testsrc2 + sine clip\n", seconds);
  auto stack = TranscodeStack::Start();
  const std::string dir = stack->clips_dir();
  const std::string clip = dir + "/source.mp4";
  {
    auto r = Run({"/usr/bin/ffmpeg",
                  "-nostdin",
                  "-v",
                  "error",
                  "-y",
                  "-f",
                  "lavfi",
                  "-i",
                  "testsrc2=size=1920x1080:rate=30",
                  "-f",
                  "lavfi",
                  "-i",
                  "sine=frequency=440",
                  "-t",
                  absl::StrCat(seconds),
                  "-c:v",
                  "libx264",
                  "-preset",
                  "veryfast",
                  "-pix_fmt",
                  "yuv420p",
                  "-c:a",
                  "aac",
                  "-shortest",
                  clip});
    if (!r.ok()) {
      std::fprintf(stderr, "clip: %s\n", r.stderr_tail.c_str());
      return 1;
    }
  }

  // --- The same commands from a shell script, 2 jobs at a time, local files.
  std::fprintf(stderr,
               "== baseline: the worker's ffmpeg commands from a shell script, 2 at a time\n");
  auto probe = Run({"/usr/bin/ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                    "-show_streams", clip});
  auto info = pettube::transcode::ParseProbeJson(probe.stdout_text);
  if (!info.ok()) {
    std::fprintf(stderr, "probe: %s\n", std::string(info.status().message()).c_str());
    return 1;
  }
  pettube::transcode::LadderOptions ladder_options;  // the coordinator's defaults
  auto ladder =
      pettube::transcode::PlanLadder(*info, pettube::transcode::DefaultPresets(), ladder_options);
  pettube::transcode::FfmpegPaths paths;
  std::string jobs;
  int n = 0;
  for (const ev::RenditionSpec& spec : *ladder) {
    const std::string out = absl::StrCat(dir, "/base-", spec.name());
    const std::string job_script = absl::StrCat(dir, "/job", n++, ".sh");
    std::ofstream js(job_script);
    js << "set -e\nmkdir -p " << Quote(out + "/hls") << "\n";
    if (spec.kind() == ev::POSTER) {
      js << ShellLine(pettube::transcode::PosterCommand(paths, clip, "", spec, out + "/poster.jpg"))
         << "\n";
    } else {
      js << ShellLine(pettube::transcode::EncodeCommand(paths, clip, "", spec, out + "/v.mp4"))
         << " >/dev/null\n";
      js << ShellLine(pettube::transcode::HlsCommand(paths, out + "/v.mp4",
                                                     spec.hls_segment_seconds(), out + "/hls/v.mp4",
                                                     out + "/hls/v.m3u8"))
         << "\n";
      js << ShellLine(pettube::transcode::ProbeCommand(paths, out + "/v.mp4")) << " >/dev/null\n";
    }
    jobs += job_script + "\n";
  }
  std::ofstream(dir + "/jobs.txt") << jobs;
  std::ofstream(dir + "/baseline.sh")
      << "xargs -P 2 -n 1 sh < " << Quote(dir + "/jobs.txt") << "\n";
  const absl::Time b0 = absl::Now();
  auto base = Run({"/bin/sh", dir + "/baseline.sh"});
  const absl::Duration baseline = absl::Now() - b0;
  if (!base.ok()) {
    std::fprintf(stderr, "baseline: %s\n", base.stderr_tail.c_str());
    return 1;
  }

  // --- The pipeline with 2 workers.
  std::fprintf(stderr, "== pipeline: upload -> coordinator -> 2 workers -> media.ready\n");
  stack->StartCoordinator({"--hls_segment_seconds=4"});
  stack->StartWorker("bench-1");
  stack->StartWorker("bench-2");
  const std::string bytes = pettube::transcode::testing::ReadAll(clip);
  const std::string media = stack->Upload(bytes);
  const absl::Time committed = absl::Now();
  auto ready = stack->observer().WaitFor(media, absl::Minutes(10));
  if (!ready.has_value() || ready->type() != "pettube.media.ready") {
    std::fprintf(stderr, "pipeline: no media.ready\n");
    return 1;
  }
  absl::Time ready_at = committed, first_playable = absl::InfiniteFuture();
  for (const auto& [t, e] : stack->observer().Timeline()) {
    if (pettube::broker_client::GetAttribute(e, "subject").value_or("") != media) continue;
    if (e.type() == "pettube.media.ready") ready_at = t;
    if (e.type() == "pettube.transcode.job.completed") {
      ev::TranscodeJobCompleted c;
      if (pettube::broker_client::UnpackPayload(e, &c).ok() && c.rendition().kind() == ev::VIDEO &&
          t < first_playable) {
        first_playable = t;
      }
    }
  }
  const absl::Duration pipeline = ready_at - committed;

  // --- The supervisor: workers from zero.
  std::fprintf(stderr, "== supervisor: first backlog to first worker attached\n");
  for (auto& w : stack->workers()) w.process->Signal(SIGTERM);
  for (auto& w : stack->workers()) (void)w.process->WaitForExit(absl::Seconds(60));
  stack->StartSupervisor(2, absl::Seconds(3));
  Stats stats(*stack);
  (void)stats.WaitFor([](const auto& s) { return s.consumers() == 0 && s.backlog() == 0; },
                      absl::InfinitePast(), absl::Seconds(30));
  const absl::Time before = absl::Now();
  const std::string small =
      stack->Upload(pettube::transcode::testing::MakeClip(dir + "/small.mp4", 2));
  auto backlog_at =
      stats.WaitFor([](const auto& s) { return s.backlog() > 0; }, before, absl::Seconds(60));
  auto attached_at =
      stats.WaitFor([](const auto& s) { return s.consumers() > 0; }, before, absl::Seconds(60));
  auto small_ready = stack->observer().WaitFor(small, absl::Minutes(2));
  // Back to zero workers before measuring idle CPU.
  (void)stats.WaitFor([](const auto& s) { return s.consumers() == 0 && s.backlog() == 0; },
                      absl::Now(), absl::Seconds(60));

  std::fprintf(stderr, "== idle CPU over 30 s, empty queue\n");
  const pid_t coordinator = stack->coordinator().process->pid();
  const pid_t supervisor = stack->supervisor().process->pid();
  const double c0 = CpuSeconds(coordinator), s0 = CpuSeconds(supervisor);
  absl::SleepFor(absl::Seconds(30));  // measuring idleness itself
  const double c1 = CpuSeconds(coordinator), s1 = CpuSeconds(supervisor);

  const double ratio = absl::FDivDuration(pipeline, baseline);
  std::printf("| measure | value | target |\n|---|---|---|\n");
  std::printf(
      "| %d s 1080p source, ladder %zu renditions + poster, 2 workers: upload committed -> "
      "media.ready | %.2f s | |\n",
      seconds, ladder->size() - 1, absl::ToDoubleSeconds(pipeline));
  std::printf("| same ffmpeg commands from a shell script, 2 at a time, local files | %.2f s | |\n",
              absl::ToDoubleSeconds(baseline));
  std::printf("| pipeline / shell | %.3fx | <= 1.10x (goal 1.03x) |\n", ratio);
  std::printf("| upload committed -> first playable rendition (job.completed) | %.2f s | |\n",
              absl::ToDoubleSeconds(first_playable - committed));
  if (backlog_at.has_value() && attached_at.has_value()) {
    std::printf("| supervisor: first backlog -> first worker attached | %.0f ms | < 2000 ms |\n",
                absl::ToDoubleMilliseconds(*attached_at - *backlog_at));
  } else {
    std::printf("| supervisor: first backlog -> first worker attached | not seen | < 2000 ms |\n");
  }
  std::printf("| small clip ready through the supervisor | %s | |\n",
              small_ready.has_value() ? small_ready->type().c_str() : "no");
  std::printf("| coordinator CPU, 30 s idle | %.3f s | < 0.05 s |\n", c1 - c0);
  std::printf("| supervisor CPU, 30 s idle | %.3f s | < 0.05 s |\n", s1 - s0);
  std::printf("\n(%ld cores; libx264 preset veryfast; HLS 4 s segments)\n",
              sysconf(_SC_NPROCESSORS_ONLN));
  return 0;
}
