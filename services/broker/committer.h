#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/broker/broker_store.h"

namespace pettube::broker {

// The broker's single writer: every durable change goes through it, in
// submission order. Operations queued while a write is in flight are
// grouped into the next write, so one fsync covers many publishers (group
// commit) and throughput grows with concurrency instead of collapsing.
//
// Two threads, a pipeline for publishes. The committer thread takes ops in
// order, runs their `prepare` and writes each group. A group made only of
// `overlaps` ops (publishes) is written unsynced and handed to the syncer
// thread, which makes every group written so far durable with one
// BrokerStore::Sync and then runs their `done`s; meanwhile the committer
// thread prepares and writes the next groups. So group k's fsync overlaps
// group k+1's preparation and write, and one fsync covers every group
// written during the previous one. An idle syncer gets a group as soon as
// it is written; a busy one gets whatever was written by the time it is
// done. Any other op first waits until every group handed off is synced
// and done, and its group is written (synced if any op asks) and done on
// the committer thread, as if there were one thread. Groups are written,
// and their `done`s run, in submission order: prepare(a), prepare(b),
// write, sync, done(a), done(b).
//
// A group written unsynced is visible to the store's readers before its
// sync returns: its effects are durable only once its `done`s run (see
// `overlaps`). A failed sync leaves the writes it covered visible and of
// unknown fate, so from then on every op fails with that error, unwritten,
// until the process restarts.
//
// Thread-safe.
class Committer {
 public:
  struct Op {
    // Adds the op's mutations; may read the store and broker state.
    std::function<void(BrokerStore::Batch&)> prepare;
    // Called with the write's result once it is durable (or failed), on the
    // syncer thread for groups written unsynced, else on the committer
    // thread.
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
    // May be prepared while earlier groups are still being written and
    // synced, and be written before its sync: its `prepare` depends on
    // earlier ops only through state it keeps itself (publish keeps the
    // dedup keys of events not yet durable), never on their writes or
    // `done`s having happened; and whatever reads the store must not take
    // its writes as durable before its `done` (refills read the queue only
    // up to the last sequence a `done` made durable).
    bool overlaps = false;
  };

  // Called for each group once it is done, with the number of ops, of
  // mutations, and the time from the start of its write to its `done`s.
  using WriteObserver = std::function<void(size_t ops, size_t mutations, absl::Duration latency)>;

  // A group takes queued ops until their `bytes` reach `max_group_bytes`
  // (at least one op): one write never holds an unbounded batch in memory.
  static constexpr size_t kDefaultMaxGroupBytes = 64 << 20;

  // Without `allow_sync`, nothing is fsynced (tests that trade crash
  // safety for speed).
  Committer(BrokerStore& store, bool allow_sync, WriteObserver observer = nullptr,
            size_t max_group_bytes = kDefaultMaxGroupBytes);
  ~Committer();  // Commits what is queued, then stops.

  void Submit(Op op) ABSL_LOCKS_EXCLUDED(mu_);

  // Runs `op` and waits for its `done`. Returns the write status.
  absl::Status SubmitAndWait(Op op) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Ops prepared into one batch, written with one Write.
  struct Group {
    std::vector<Op> ops;
    std::unique_ptr<BrokerStore::Batch> batch;
    size_t bytes = 0;
    bool sync = false;
    // Holds an op without `overlaps`: written synced (if any op asks) and
    // done on the committer thread, with nothing handed off in flight.
    bool inline_write = false;
    // When its write started, and its result.
    absl::Time write_start;
    absl::Status written;
    bool empty() const { return ops.empty(); }
  };

  void Run();        // the committer thread
  void RunSyncer();  // the syncer thread
  void Prepare(Group& group, Op op);
  // Writes an inline group (synced if it asks), and runs its `done`s.
  void WriteInline(Group& group) ABSL_LOCKS_EXCLUDED(mu_);
  void Finish(Group& group, const absl::Status& status);
  // The first failed sync's error, or OK.
  absl::Status SyncFailure() ABSL_LOCKS_EXCLUDED(mu_);
  // Writes an `overlaps` group unsynced and hands it to the syncer thread.
  void WriteUnsynced(Group& group) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes `group`: unsynced for the syncer, or here (`inline_write`);
  // leaves `group` empty.
  void Flush(Group& group) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until every group handed off is written, synced and done.
  void AwaitPipelineIdle() ABSL_LOCKS_EXCLUDED(mu_);
  bool PipelineBusyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !written_.empty() || syncing_;
  }

  BrokerStore& store_;
  const bool allow_sync_;
  WriteObserver observer_;
  const size_t max_group_bytes_;
  absl::Mutex mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Groups written and waiting for the syncer thread, in order, and
  // whether it is syncing some.
  std::vector<std::unique_ptr<Group>> written_ ABSL_GUARDED_BY(mu_);
  bool syncing_ ABSL_GUARDED_BY(mu_) = false;
  bool pipeline_stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The first failed sync's error: every later op fails with it.
  absl::Status sync_failed_ ABSL_GUARDED_BY(mu_);
  std::thread syncer_;
  std::thread thread_;
};

}  // namespace pettube::broker
