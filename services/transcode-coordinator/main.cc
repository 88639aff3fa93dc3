// PetTube transcode-coordinator: probes uploaded sources, plans rendition
// ladders and orchestrates the transcode jobs (see coordinator.h).
//
// Own flags (besides libs/server's and libs/workload's --auth_server,
// --broker_server, --client_id, --client_secret_file):
//   --objects_url=http://H:P   the upload service's object listener (sources)
//   --upload_server=H:P        the upload service's gRPC API (master playlists)
//   --presets, --hls_segment_seconds, --job_timeout, --max_attempts,
//   --job_ack_deadline, --ffprobe, --probe_timeout
#include <memory>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/synchronization/notification.h"
#include "libs/broker_client/publisher.h"
#include "libs/broker_client/subscriber.h"
#include "libs/client/channel.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "libs/workload/workload.h"
#include "services/transcode-coordinator/coordinator.h"
#include "services/transcode-coordinator/dead_letter_watcher.h"
#include "services/transcode-coordinator/ffprobe_prober.h"
#include "services/transcode-coordinator/rocksdb_job_store.h"
#include "services/transcode-coordinator/subscriptions.h"
#include "services/transcode-coordinator/transcode_service.h"

ABSL_FLAG(std::string, objects_url, "",
          "http://HOST:PORT of the upload service's object listener (sources are read there)");
ABSL_FLAG(std::string, upload_server, "",
          "upload service gRPC address (outputs are written there)");
ABSL_FLAG(std::string, presets, "",
          "ladder as NAME:SHORT_SIDE:VIDEO_KBPS:AUDIO_KBPS,...; empty: 1080p,720p,480p,360p");
ABSL_FLAG(int, hls_segment_seconds, 4, "HLS segment length (and keyframe interval)");
ABSL_FLAG(absl::Duration, job_timeout, absl::Minutes(30), "per-attempt limit of a transcode job");
ABSL_FLAG(int, max_attempts, 3, "deliveries of a job before it is dead-lettered");
ABSL_FLAG(absl::Duration, job_ack_deadline, absl::Seconds(60),
          "work-queue lease; workers extend it while ffmpeg runs");
ABSL_FLAG(std::string, ffprobe, "/usr/bin/ffprobe", "ffprobe binary");
ABSL_FLAG(absl::Duration, probe_timeout, absl::Seconds(60), "limit of one ffprobe run");

namespace {

// EventSink over the broker Publisher.
class PublisherSink : public pettube::transcode::EventSink {
 public:
  explicit PublisherSink(pettube::broker_client::Publisher& publisher) : publisher_(publisher) {}
  void Publish(io::cloudevents::v1::CloudEvent event,
               std::function<void(absl::Status)> done) override {
    publisher_.PublishAsync(
        std::move(event),
        [done = std::move(done)](absl::StatusOr<pettube::broker_client::PublishResult> r) {
          done(r.status());
        });
  }

 private:
  pettube::broker_client::Publisher& publisher_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace pettube;  // NOLINT: main only
  const server::Options opts = server::ParseFlagsOrExit(argc, argv, "transcode-coordinator");
  if (absl::GetFlag(FLAGS_objects_url).empty()) {
    return server::ExitWith(absl::InvalidArgumentError("objects_url: required"));
  }
  if (absl::GetFlag(FLAGS_upload_server).empty()) {
    return server::ExitWith(absl::InvalidArgumentError("upload_server: required"));
  }
  transcode::CoordinatorProbe probe(server::ProcessRegistry());
  transcode::Coordinator::Options options;
  options.probe = &probe;
  if (const std::string p = absl::GetFlag(FLAGS_presets); !p.empty()) {
    auto presets = transcode::ParsePresets(p);
    if (!presets.ok()) return server::ExitWith(presets.status());
    options.presets = std::move(*presets);
  }
  const int segment = absl::GetFlag(FLAGS_hls_segment_seconds);
  if (segment < 1 || segment > 30) {
    return server::ExitWith(absl::InvalidArgumentError("hls_segment_seconds: must be 1 to 30"));
  }
  options.ladder.hls_segment_seconds = segment;
  options.job_timeout = absl::GetFlag(FLAGS_job_timeout);
  options.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  if (options.max_attempts < 1 || options.max_attempts > 100) {
    return server::ExitWith(absl::InvalidArgumentError("max_attempts: must be 1 to 100"));
  }

  // Every scope this client is granted: it needs events.publish,
  // events.subscribe (creating its subscriptions makes it their owner),
  // objects.read (probe) and objects.write (master playlists).
  auto workload = workload::FromFlags({});
  if (!workload.ok()) return server::ExitWith(workload.status());
  if (workload->broker_channel == nullptr) {
    return server::ExitWith(absl::InvalidArgumentError("broker_server: required"));
  }
  auto upload_channel =
      client::MakeChannel(absl::GetFlag(FLAGS_upload_server), client::ChannelOptionsFromFlags());
  if (!upload_channel.ok()) return server::ExitWith(upload_channel.status());

  auto store = transcode::RocksDbJobStore::Open(opts.data_dir + "/jobs");
  if (!store.ok()) return server::ExitWith(store.status());

  transcode::FfprobeProber prober({absl::GetFlag(FLAGS_objects_url),
                                   absl::GetFlag(FLAGS_ffprobe),
                                   absl::GetFlag(FLAGS_probe_timeout),
                                   {}},
                                  workload->tokens);
  transcode::GrpcObjectWriter objects(*upload_channel, workload->tokens);
  broker_client::Publisher::Options publisher_options;
  publisher_options.configure_context = workload->ConfigureContext();
  broker_client::Publisher publisher(workload->broker_channel, publisher_options);
  PublisherSink sink(publisher);
  transcode::Coordinator coordinator(options, **store, prober, objects, sink);
  if (auto s = coordinator.Start(); !s.ok()) return server::ExitWith(s);

  transcode::WorkQueueOptions queue;
  queue.ack_deadline = absl::GetFlag(FLAGS_job_ack_deadline);
  queue.max_delivery_attempts = options.max_attempts;
  broker_client::Subscriber::Options sub_options;
  sub_options.subscription = transcode::kCoordinatorSubscription;
  sub_options.consumer = "transcode-coordinator";
  sub_options.max_in_flight = 32;
  sub_options.handler_concurrency = 4;
  sub_options.configure_context = workload->ConfigureContext();
  sub_options.on_stopped = [](const absl::Status& s) {
    log::Error("coordinator.subscriber_stopped", {{"status", s}});
  };
  broker_client::Subscriber subscriber(workload->broker_channel, sub_options);
  // The broker may come up after us: the subscriptions are created (waiting
  // for it to be reachable) and the subscriber attached in the background,
  // while we already serve the API.
  // Jobs the work queue gave up on without a last job.failed.
  transcode::DeadLetterWatcher dead_letters(workload->broker_channel, workload->ConfigureContext(),
                                            coordinator, transcode::kJobsSubscription);
  if (auto s = dead_letters.Start(); !s.ok()) return server::ExitWith(s);
  absl::Notification draining;
  std::thread attach([&] {
    while (!draining.HasBeenNotified()) {
      absl::Status s = transcode::EnsureSubscriptions(
          workload->broker_channel, workload->ConfigureContext(), queue, absl::Seconds(5));
      if (s.ok()) break;
      log::Warning("coordinator.subscriptions_not_ready", {{"status", s}});
      if (s.code() != absl::StatusCode::kDeadlineExceeded &&
          s.code() != absl::StatusCode::kUnavailable) {
        // Refused (credentials, settings): retried, but not in a tight loop.
        draining.WaitForNotificationWithTimeout(absl::Seconds(10));
      }
    }
    if (draining.HasBeenNotified()) return;
    if (auto s = subscriber.Start(
            [&](const broker_client::Delivery& d) { return coordinator.Handle(d.event()); });
        !s.ok()) {
      log::Error("coordinator.subscriber_start_failed", {{"status", s}});
      return;
    }
    log::Info("coordinator.subscribed", {{"subscription", transcode::kCoordinatorSubscription}});
  });

  transcode::TranscodeService service(coordinator, workload->authenticator.get());
  server::ServeSpec spec;
  spec.services.push_back(server::Expose<transcode::v1::TranscodeCoordinator>(&service));
  spec.on_drain = [&] {
    dead_letters.Shutdown();
    draining.Notify();
    subscriber.Shutdown(absl::Seconds(5));
  };
  const int code = server::Serve(opts, std::move(spec));
  if (!draining.HasBeenNotified()) draining.Notify();
  attach.join();
  subscriber.Shutdown(absl::Seconds(5));
  publisher.Shutdown(absl::Seconds(5));
  return code;
}
