#pragma once

// The services transcoding needs, as real processes on 127.0.0.1:0, for
// system tests and the benchmark: auth-token-exchange (--dev_idp, workload
// clients upload / transcode-coordinator / transcode-worker /
// transcode-supervisor / tester), broker (verifying tokens) and upload
// (with its object listener); then the coordinator, workers and the
// supervisor on demand. Plus an Observer of the broker's media events.
// Not thread-safe (one test thread), except Observer.

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/credentials/token_source.h"
#include "libs/broker_client/subscriber.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/service_process.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/transcode/v1/transcode.grpc.pb.h"

namespace pettube::transcode::testing {

std::chrono::system_clock::time_point In(int seconds);

// A started service; `process` belongs to `service` (null if it did not start).
struct Running {
  std::unique_ptr<pettube::testing::ServiceProcess> service;
  pettube::testing::ChildProcess* process = nullptr;
  std::string grpc;
  std::string metrics;
  std::string ready;
};

// Starts services/{binary}/{binary} with `args` and the common flags; the
// ready line is awaited (EXPECT-ed in tests).
Running StartBinary(const std::string& binary, const std::string& dir,
                    std::vector<std::string> args);

// A clip from ffmpeg's lavfi sources (testsrc2 + sine), H.264/AAC MP4;
// `video` false gives audio only. Returns its bytes ("" on failure).
std::string MakeClip(const std::string& path, int seconds, const std::string& size = "320x240",
                     bool video = true);
std::string ReadAll(const std::string& path);

// Collects media.ready / .failed and job requested / progressed /
// completed events from its own subscription ("subscriptions/{id}").
// Thread-safe.
class Observer {
 public:
  Observer(std::shared_ptr<grpc::Channel> broker, std::shared_ptr<auth::TokenSource> tokens,
           const std::string& id = "test-observer");
  ~Observer();

  // Waits until `n` events of `type` about `media` arrived.
  bool WaitForCount(const std::string& media, const std::string& type, int n,
                    absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // The first event of `type` about `media`; nullopt on timeout.
  std::optional<io::cloudevents::v1::CloudEvent> WaitForType(const std::string& media,
                                                             const std::string& type,
                                                             absl::Duration timeout);
  // The first media.ready or media.failed of `media`; nullopt on timeout.
  std::optional<io::cloudevents::v1::CloudEvent> WaitFor(const std::string& media,
                                                         absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<io::cloudevents::v1::CloudEvent> All(const std::string& media,
                                                   const std::string& type)
      ABSL_LOCKS_EXCLUDED(mu_);
  int Count(const std::string& media, const std::string& type) ABSL_LOCKS_EXCLUDED(mu_);
  // When each event arrived here.
  std::vector<std::pair<absl::Time, io::cloudevents::v1::CloudEvent>> Timeline()
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  int CountLocked(const std::string& media, const std::string& type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const io::cloudevents::v1::CloudEvent* FindLocked(const std::string& media)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::vector<std::pair<absl::Time, io::cloudevents::v1::CloudEvent>> events_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<broker_client::Subscriber> subscriber_;
};

class TranscodeStack {
 public:
  // Config, auth, broker and upload under fresh temporary directories.
  static std::unique_ptr<TranscodeStack> Start();
  ~TranscodeStack();  // SIGTERM to workers, supervisor, coordinator

  void StartCoordinator(std::vector<std::string> extra = {});
  Running& StartWorker(const std::string& name = "", std::vector<std::string> extra = {});
  void StartSupervisor(int max_workers, absl::Duration worker_idle_exit);

  // A person's access token through the dev IdP.
  std::string SignIn(const std::string& user);
  // Uploads `bytes` as a person; the media name ("media/{id}").
  std::string Upload(const std::string& bytes, const std::string& title = "cat");
  // GET /objects/{bucket}/{key} with the tester's objects.read token.
  absl::StatusOr<pettube::testing::HttpResponse> GetObject(const std::string& bucket,
                                                           const std::string& key);
  // A context carrying the tester's token (events.*, objects.read,
  // transcode.admin).
  std::unique_ptr<grpc::ClientContext> AsTester(int seconds = 10);

  std::string Secret(const std::string& client) const;
  std::vector<std::string> PeerArgs(const std::string& client) const;

  Running& coordinator() { return coordinator_; }
  Running& supervisor() { return supervisor_; }
  std::deque<Running>& workers() { return workers_; }
  pettube::transcode::v1::TranscodeCoordinator::Stub& coordinator_stub() {
    return *coordinator_stub_;
  }
  std::shared_ptr<grpc::Channel> broker_channel() const { return broker_channel_; }
  std::shared_ptr<auth::TokenSource> tester() const { return tester_; }
  Observer& observer() { return *observer_; }
  const std::string& objects() const { return objects_; }
  const std::string& clips_dir() const { return clips_; }

 private:
  TranscodeStack() = default;

  std::string config_, objects_, coordinator_dir_, supervisor_dir_, clips_;
  Running auth_, broker_, upload_, coordinator_, supervisor_;
  std::deque<Running> workers_;  // deque: references stay valid
  std::shared_ptr<grpc::Channel> auth_channel_, broker_channel_;
  std::shared_ptr<auth::TokenSource> tester_;
  std::unique_ptr<Observer> observer_;
  std::unique_ptr<pettube::transcode::v1::TranscodeCoordinator::Stub> coordinator_stub_;
};

}  // namespace pettube::transcode::testing
