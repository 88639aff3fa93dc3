// PetTube transcode-supervisor: keeps one transcode-worker process per
// queued job (up to --max_workers), driven by the broker's pushed
// WatchSubscriptionStats stream; workers exit on their own after
// --worker_idle_exit, so an idle queue has zero workers.
//
// Own flags (besides libs/server's and libs/workload's):
//   --subscription=subscriptions/transcode-jobs
//   --max_workers=2
//   --worker_binary=PATH        the transcode-worker binary
//   --worker_args=A,B,...       its flags (peers, credentials); "{n}" is a
//                               per-worker number
//   --worker_idle_exit=10s
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "libs/broker_client/stats_watcher.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "libs/workload/workload.h"
#include "services/transcode-supervisor/supervisor.h"

ABSL_FLAG(std::string, subscription, "subscriptions/transcode-jobs", "the work queue to watch");
ABSL_FLAG(int, max_workers, 2, "most worker processes at once");
ABSL_FLAG(std::string, worker_binary, "", "path of the transcode-worker binary");
ABSL_FLAG(std::vector<std::string>, worker_args, {},
          "flags for each worker, comma-separated; {n} becomes a per-worker number");
ABSL_FLAG(absl::Duration, worker_idle_exit, absl::Seconds(10),
          "a worker exits after this long without a job");

int main(int argc, char** argv) {
  using namespace pettube;  // NOLINT: main only
  const server::Options opts = server::ParseFlagsOrExit(argc, argv, "transcode-supervisor");
  const std::string binary = absl::GetFlag(FLAGS_worker_binary);
  if (binary.empty())
    return server::ExitWith(absl::InvalidArgumentError("worker_binary: required"));
  const int max_workers = absl::GetFlag(FLAGS_max_workers);
  if (max_workers < 0 || max_workers > 256) {
    return server::ExitWith(absl::InvalidArgumentError("max_workers: must be 0 to 256"));
  }
  // Every scope this client is granted: it needs events.subscribe.
  auto workload = workload::FromFlags({});
  if (!workload.ok()) return server::ExitWith(workload.status());
  if (workload->broker_channel == nullptr) {
    return server::ExitWith(absl::InvalidArgumentError("broker_server: required"));
  }

  transcode::Supervisor::Options options;
  options.max_workers = max_workers;
  options.worker_argv = {
      binary, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
      absl::StrCat("--data_dir=", opts.data_dir, "/workers/{n}"),
      absl::StrCat("--idle_exit=", absl::FormatDuration(absl::GetFlag(FLAGS_worker_idle_exit)))};
  for (const std::string& a : absl::GetFlag(FLAGS_worker_args)) options.worker_argv.push_back(a);
  options.stop_grace = opts.drain_timeout + absl::Seconds(20);
  transcode::Supervisor supervisor(options);

  broker_client::StatsWatcher::Options watch_options;
  watch_options.subscription = absl::GetFlag(FLAGS_subscription);
  watch_options.configure_context = workload->ConfigureContext();
  watch_options.on_stream_end = [](const absl::Status& s) {
    log::Warning("supervisor.stats_stream_ended", {{"status", s}});
  };
  watch_options.on_stopped = [](const absl::Status& s) {
    log::Error("supervisor.stats_stopped", {{"status", s}});
  };
  broker_client::StatsWatcher watcher(workload->broker_channel, watch_options);
  if (auto s = watcher.Start([&](const broker_client::SubscriptionStats& stats) {
        supervisor.OnStats(stats.backlog(), stats.in_flight());
      });
      !s.ok()) {
    return server::ExitWith(s);
  }
  server::ServeSpec spec;
  spec.on_drain = [&] {
    watcher.Shutdown();
    supervisor.Shutdown();
  };
  return server::Serve(opts, std::move(spec));
}
