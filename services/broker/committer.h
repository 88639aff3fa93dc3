#pragma once

#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/broker/broker_store.h"

namespace pettube::broker {

// The broker's single writer: every durable change goes through it, in
// submission order. Operations queued while a write is in flight are
// grouped into the next write, so one fsync covers many publishers (group
// commit) and throughput grows with concurrency instead of collapsing.
//
// Thread-safe. `prepare` and `done` run on the committer thread, in order:
// prepare(a), prepare(b), write, done(a), done(b).
class Committer {
 public:
  struct Op {
    // Adds the op's mutations; may read the store and broker state.
    std::function<void(BrokerStore::Batch&)> prepare;
    // Called with the write's result once it is durable (or failed).
    std::function<void(const absl::Status&)> done;
    // Needs fsync before `done` (acks to publishers). Ops that only record
    // progress (attempt counts) may skip it.
    bool sync = true;
    // Must see every earlier op committed and be written alone (seek and
    // backfill scan the store).
    bool exclusive = false;
    // About how many bytes the op adds to a batch (published events):
    // bounds a group's size.
    size_t bytes = 0;
  };

  // Called after each write with the number of ops and the write's latency.
  using WriteObserver = std::function<void(size_t ops, size_t mutations, absl::Duration latency)>;

  // A group takes queued ops until their `bytes` reach `max_group_bytes`
  // (at least one op): one write never holds an unbounded batch in memory.
  static constexpr size_t kDefaultMaxGroupBytes = 64 << 20;

  Committer(BrokerStore& store, bool allow_sync, WriteObserver observer = nullptr,
            size_t max_group_bytes = kDefaultMaxGroupBytes);
  ~Committer();  // Commits what is queued, then stops.

  void Submit(Op op) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs `op` and waits for its `done`. Returns the write status.
  absl::Status SubmitAndWait(Op op) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();
  void WriteGroup(std::vector<Op>& group);

  BrokerStore& store_;
  const bool allow_sync_;
  WriteObserver observer_;
  const size_t max_group_bytes_;
  absl::Mutex mu_;
  std::vector<Op> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace pettube::broker
