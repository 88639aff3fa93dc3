#include "services/broker/committer.h"

#include <iterator>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace pettube::broker {

Committer::Committer(BrokerStore& store, bool allow_sync, WriteObserver observer,
                     size_t max_group_bytes)
    : store_(store),
      allow_sync_(allow_sync),
      observer_(std::move(observer)),
      max_group_bytes_(max_group_bytes),
      thread_([this] { Run(); }) {}

Committer::~Committer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void Committer::Submit(Op op) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(op));
}

absl::Status Committer::SubmitAndWait(Op op) {
  absl::Notification finished;
  absl::Status result;
  auto inner_done = std::move(op.done);
  op.done = [&](const absl::Status& s) {
    if (inner_done) inner_done(s);
    result = s;
    finished.Notify();
  };
  Submit(std::move(op));
  finished.WaitForNotification();
  return result;
}

void Committer::Run() {
  std::vector<Op> taken;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, nothing left
      size_t n = 0, bytes = 0;
      while (n < queue_.size() && (n == 0 || bytes + queue_[n].bytes <= max_group_bytes_)) {
        bytes += queue_[n].bytes;
        ++n;
      }
      taken.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    // Exclusive ops split the group: everything before them is written
    // first, then they are written alone.
    std::vector<Op> group;
    for (Op& op : taken) {
      if (op.exclusive) {
        WriteGroup(group);
        group.push_back(std::move(op));
        WriteGroup(group);
      } else {
        group.push_back(std::move(op));
      }
    }
    WriteGroup(group);
    taken.clear();
  }
}

void Committer::WriteGroup(std::vector<Op>& group) {
  if (group.empty()) return;
  auto batch = store_.NewBatch();
  bool sync = false;
  for (Op& op : group) {
    if (op.prepare) op.prepare(*batch);
    sync |= op.sync;
  }
  const absl::Time start = absl::Now();
  absl::Status status = absl::OkStatus();
  if (batch->Count() > 0) status = store_.Write(*batch, sync && allow_sync_);
  if (observer_) observer_(group.size(), batch->Count(), absl::Now() - start);
  for (Op& op : group) {
    if (op.done) op.done(status);
  }
  group.clear();
}

}  // namespace pettube::broker
