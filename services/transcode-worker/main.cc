// PetTube transcode-worker: a competing consumer of the transcode work
// queue (one job at a time) running real ffmpeg (see worker.h).
//
// Own flags (besides libs/server's and libs/workload's --auth_server,
// --broker_server, --client_id, --client_secret_file):
//   --objects_url=http://H:P   upload's object listener (sources are read there)
//   --upload_server=H:P        upload's gRPC API (outputs are written there)
//   --coordinator=H:P          transcode-coordinator (WatchJob); empty: none
//   --scratch_dir              temporary files (default {data_dir}/scratch, swept at start)
//   --worker_name, --idle_exit, --drain_deadline, --ffmpeg, --ffprobe, --x264_preset,
//   --subscription
#include <signal.h>
#include <unistd.h>

#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "libs/broker_client/publisher.h"
#include "libs/broker_client/subscriber.h"
#include "libs/client/channel.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "libs/workload/workload.h"
#include "services/transcode-worker/job_runner.h"
#include "services/transcode-worker/object_writer.h"
#include "services/transcode-worker/worker.h"

ABSL_FLAG(std::string, objects_url, "", "http://HOST:PORT of the upload service's object listener");
ABSL_FLAG(std::string, upload_server, "",
          "upload service gRPC address (outputs are written there)");
ABSL_FLAG(std::string, coordinator, "",
          "transcode-coordinator gRPC address, to learn of cancelled jobs (WatchJob)");
ABSL_FLAG(std::string, scratch_dir, "", "temporary files; default {data_dir}/scratch");
ABSL_FLAG(std::string, worker_name, "", "name in events and broker stats; default host-pid");
ABSL_FLAG(absl::Duration, idle_exit, absl::ZeroDuration(),
          "exit after this long without a job (0: never); the supervisor sets it");
ABSL_FLAG(absl::Duration, drain_deadline, absl::Seconds(20),
          "on SIGTERM, how long the job in hand may still run before it is handed back");
ABSL_FLAG(std::string, ffmpeg, "/usr/bin/ffmpeg", "ffmpeg binary");
ABSL_FLAG(std::string, ffprobe, "/usr/bin/ffprobe", "ffprobe binary");
ABSL_FLAG(std::string, x264_preset, "veryfast", "libx264 preset");
ABSL_FLAG(std::string, subscription, "subscriptions/transcode-jobs", "the work queue");

namespace {

class BrokerEvents : public pettube::transcode::WorkerEvents {
 public:
  explicit BrokerEvents(pettube::broker_client::Publisher& p) : publisher_(p) {}
  absl::Status PublishAndWait(io::cloudevents::v1::CloudEvent event,
                              absl::Duration timeout) override {
    return publisher_.PublishAndWait(std::move(event), timeout).status();
  }
  void PublishAsync(io::cloudevents::v1::CloudEvent event) override {
    publisher_.PublishAsync(std::move(event), [](auto) {});
  }

 private:
  pettube::broker_client::Publisher& publisher_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace pettube;  // NOLINT: main only
  const server::Options opts = server::ParseFlagsOrExit(argc, argv, "transcode-worker");
  if (absl::GetFlag(FLAGS_objects_url).empty()) {
    return server::ExitWith(absl::InvalidArgumentError("objects_url: required"));
  }
  if (absl::GetFlag(FLAGS_upload_server).empty()) {
    return server::ExitWith(absl::InvalidArgumentError("upload_server: required"));
  }
  // Every scope this client is granted: it needs events.publish,
  // events.subscribe, objects.read and objects.write.
  auto workload = workload::FromFlags({});
  if (!workload.ok()) return server::ExitWith(workload.status());
  if (workload->broker_channel == nullptr) {
    return server::ExitWith(absl::InvalidArgumentError("broker_server: required"));
  }
  const client::ChannelOptions channel_options = client::ChannelOptionsFromFlags();
  auto upload_channel = client::MakeChannel(absl::GetFlag(FLAGS_upload_server), channel_options);
  if (!upload_channel.ok()) return server::ExitWith(upload_channel.status());
  std::unique_ptr<transcode::GrpcJobWatcher> watcher;
  if (const std::string c = absl::GetFlag(FLAGS_coordinator); !c.empty()) {
    auto channel = client::MakeChannel(c, channel_options);
    if (!channel.ok()) return server::ExitWith(channel.status());
    watcher = std::make_unique<transcode::GrpcJobWatcher>(*channel, workload->tokens);
  }
  std::string name = absl::GetFlag(FLAGS_worker_name);
  if (name.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    name = absl::StrCat(host, "-", getpid());
  }

  transcode::GrpcObjectWriter objects(*upload_channel, workload->tokens);
  transcode::JobRunner::Options runner_options;
  runner_options.paths = {absl::GetFlag(FLAGS_ffmpeg), absl::GetFlag(FLAGS_ffprobe),
                          absl::GetFlag(FLAGS_x264_preset)};
  runner_options.scratch_dir = absl::GetFlag(FLAGS_scratch_dir).empty()
                                   ? opts.data_dir + "/scratch"
                                   : absl::GetFlag(FLAGS_scratch_dir);
  runner_options.objects_url = absl::GetFlag(FLAGS_objects_url);
  runner_options.worker = name;
  transcode::JobRunner runner(runner_options, objects, workload->tokens);
  if (auto s = runner.SweepScratch(); !s.ok()) return server::ExitWith(s);

  broker_client::Publisher::Options publisher_options;
  publisher_options.configure_context = workload->ConfigureContext();
  broker_client::Publisher publisher(workload->broker_channel, publisher_options);
  BrokerEvents events(publisher);
  transcode::WorkerProbe probe(server::ProcessRegistry());
  transcode::Worker::Options worker_options;
  worker_options.probe = &probe;
  worker_options.name = name;
  worker_options.idle_exit = absl::GetFlag(FLAGS_idle_exit);
  worker_options.drain_deadline = absl::GetFlag(FLAGS_drain_deadline);
  transcode::Worker worker(worker_options, runner, events, watcher.get());

  broker_client::Subscriber::Options sub_options;
  sub_options.subscription = absl::GetFlag(FLAGS_subscription);
  sub_options.consumer = name;
  // One job at a time: a worker process is one ffmpeg.
  sub_options.max_in_flight = 1;
  sub_options.handler_concurrency = 1;
  sub_options.configure_context = workload->ConfigureContext();
  sub_options.shutdown_grace = worker_options.drain_deadline + absl::Seconds(5);
  sub_options.on_stopped = [](const absl::Status& s) {
    log::Error("worker.subscriber_stopped", {{"status", s}});
    kill(getpid(), SIGTERM);
  };
  broker_client::Subscriber subscriber(workload->broker_channel, sub_options);
  if (auto s = subscriber.Start([&](const broker_client::Delivery& d) { return worker.Handle(d); });
      !s.ok()) {
    return server::ExitWith(s);
  }
  worker.StartIdleTimer([] { kill(getpid(), SIGTERM); });

  server::ServeSpec spec;
  spec.on_drain = [&] {
    worker.BeginDrain();
    subscriber.Shutdown(worker_options.drain_deadline + absl::Seconds(5));
  };
  const int code = server::Serve(opts, std::move(spec));
  subscriber.Shutdown(absl::Seconds(1));
  publisher.Shutdown(absl::Seconds(5));
  return code;
}
