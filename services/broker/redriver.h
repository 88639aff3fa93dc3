#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Redrive: moves a subscription's dead letters back to its queue, a chunk
// per second at most, each event owed again with its attempts starting
// over (its copy moves to the pending record, which retention never
// touches).
//
// Each chunk is one committer op; the next starts a second after the last
// was written, on a timer: no thread waits out the rate limit.
//
// Thread-safe.
class Redriver {
 public:
  using Done = std::function<void(absl::StatusOr<int64_t>)>;

  explicit Redriver(BrokerState& state) : s_(state) {}

  // Moves up to `max_events` (0: all), `max_per_second` at a time; `done`
  // gets the count moved (from the committer thread, or from Drain's
  // caller when the broker stops first, or inline when refused up front).
  void Redrive(const std::string& name, int64_t max_events, int max_per_second,
               const Access& access, Done done) ABSL_LOCKS_EXCLUDED(s_.mu);

  // Cancels the redrives waiting for their next chunk; returns their
  // answers (what they moved), for the caller to run off the lock.
  std::vector<std::function<void()>> DrainLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

 private:
  struct Run {
    std::string name;
    Access access;
    int64_t max_events = 0;
    int per_second = 0;
    int64_t moved = 0;
    Done done;
  };

  void NextChunk(std::shared_ptr<Run> run) ABSL_LOCKS_EXCLUDED(s_.mu);
  void OnDue(Run* key) ABSL_LOCKS_EXCLUDED(s_.mu);

  BrokerState& s_;
  // Redrives between chunks: their timer, and the run.
  absl::flat_hash_map<Run*, std::pair<Clock::TimerId, std::shared_ptr<Run>>> waiting_
      ABSL_GUARDED_BY(s_.mu);
};

}  // namespace pettube::broker
