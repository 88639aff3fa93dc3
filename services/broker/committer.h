#pragma once

#include <deque>
#include <functional>
#include <memory>
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
// Two threads. The committer thread takes ops in order and runs their
// `prepare`. A group made only of `overlaps` ops (publishes) is handed to
// the writer thread, which writes it (fsync included) and runs the ops'
// `done`, while the committer thread already prepares the next group: the
// next publishes' dedup lookups and batches overlap this group's write and
// fsync. Any other op first waits until every group handed off is written
// and done, and its group is written on the committer thread, as if the
// committer had one thread. Groups are written, and their `done`s run, in
// submission order: prepare(a), prepare(b), write, done(a), done(b).
//
// Thread-safe.
class Committer {
 public:
  struct Op {
    // Adds the op's mutations; may read the store and broker state.
    std::function<void(BrokerStore::Batch&)> prepare;
    // Called with the write's result once it is durable (or failed), on the
    // writer thread for `overlaps` groups, else on the committer thread.
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
    // May be prepared while earlier groups are still being written: its
    // `prepare` depends on earlier ops only through state it keeps itself
    // (publish keeps the dedup keys of events not yet written), never on
    // their writes or `done`s having happened. Nothing written is visible
    // before its fsync returns, so no reader sees an unsynced event.
    bool overlaps = false;
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
  // Ops prepared into one batch, written with one Write.
  struct Group {
    std::vector<Op> ops;
    std::unique_ptr<BrokerStore::Batch> batch;
    size_t bytes = 0;
    bool sync = false;
    // Holds an op without `overlaps`: written on the committer thread.
    bool inline_write = false;
    bool empty() const { return ops.empty(); }
  };

  void Run();        // the committer thread
  void RunWriter();  // the writer thread
  void Prepare(Group& group, Op op);
  void Write(Group& group);
  // Hands `group` to the writer thread once it is free, or writes it here
  // (`inline_write`); leaves `group` empty.
  void Flush(Group& group) ABSL_LOCKS_EXCLUDED(mu_);
  void AwaitWriterIdle() ABSL_LOCKS_EXCLUDED(mu_);
  bool WriterBusyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return handed_off_ != nullptr || writing_;
  }

  BrokerStore& store_;
  const bool allow_sync_;
  WriteObserver observer_;
  const size_t max_group_bytes_;
  absl::Mutex mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The group waiting for the writer thread (at most one), and whether the
  // writer thread is writing one.
  std::unique_ptr<Group> handed_off_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool writer_stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;
  std::thread thread_;
};

}  // namespace pettube::broker
