#pragma once

// Scale to zero on one machine: keeps as many transcode-worker processes as
// the work queue has jobs (backlog, in flight included), up to a maximum;
// workers exit by themselves after an idle period, so an empty queue ends
// with zero processes. Driven by the broker's pushed subscription stats
// (OnStats), never by polling. A worker that dies right after start delays
// the next start (exponential backoff), so a broken worker cannot spin.
//
// Thread-safe. Workers are started from the supervisor's own thread (they
// die with it: PR_SET_PDEATHSIG).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/transcode-worker/subprocess.h"

namespace pettube::transcode {

// How many workers to start now: enough for every queued job, within the
// maximum. Pure.
int WorkersToStart(int64_t backlog, int running, int max_workers);

class Supervisor {
 public:
  struct Options {
    int max_workers = 2;
    // Command of one worker; `{n}` in an argument is replaced by a number
    // unique to this worker (for --data_dir, --worker_name).
    std::vector<std::string> worker_argv;
    std::vector<std::string> worker_env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
    // A worker exiting sooner than this counts as a failed start.
    absl::Duration min_healthy_run = absl::Seconds(2);
    absl::Duration max_backoff = absl::Seconds(30);
    // On Shutdown, how long workers get after SIGTERM before SIGKILL.
    absl::Duration stop_grace = absl::Seconds(30);
  };

  struct Counts {
    int running = 0;
    int64_t backlog = 0;
    int64_t started_total = 0;
    int64_t exited_total = 0;
  };

  explicit Supervisor(Options options);
  // Shutdown.
  ~Supervisor();

  // The latest queue stats from the broker.
  void OnStats(int64_t backlog, int64_t in_flight) ABSL_LOCKS_EXCLUDED(mu_);

  // SIGTERM to every worker, wait up to stop_grace, SIGKILL the rest.
  // Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  Counts counts() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `done(counts)` holds; false after `timeout`.
  bool WaitFor(const std::function<bool(const Counts&)>& done, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Child {
    std::unique_ptr<Subprocess> process;
    std::thread waiter;
    absl::Time start;
  };

  void ControlLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void StartOneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopAllLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnExit(int64_t id, const Subprocess::Result& result) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<int64_t, std::unique_ptr<Child>> children_ ABSL_GUARDED_BY(mu_);
  // Exited children whose waiter threads still need joining.
  std::vector<std::unique_ptr<Child>> finished_ ABSL_GUARDED_BY(mu_);
  // No start before this (backoff after failed starts).
  absl::Time next_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int failed_starts_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time first_backlog_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Serializes Shutdown callers around the join.
  absl::Mutex join_mu_;
  std::thread control_;
};

}  // namespace pettube::transcode
