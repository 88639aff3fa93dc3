#include "services/broker/committer.h"

#include <optional>
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
      writer_([this] { RunWriter(); }),
      thread_([this] { Run(); }) {}

Committer::~Committer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  writer_.join();
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
  Group current;
  for (;;) {
    std::optional<Op> next;
    {
      absl::MutexLock lock(&mu_);
      // An op to prepare, or a free writer for what is prepared so far.
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty() || (!current.empty() && !WriterBusyLocked());
      };
      mu_.Await(absl::Condition(&ready));
      if (!queue_.empty()) {
        next.emplace(std::move(queue_.front()));
        queue_.pop_front();
      } else if (current.empty()) {
        break;  // stopping, nothing left
      }
    }
    if (!next.has_value()) {
      Flush(current);  // nothing more queued: write what is prepared
      continue;
    }
    Op& op = *next;
    if (op.exclusive) {
      // Everything before it written first, then it alone.
      Flush(current);
      AwaitWriterIdle();
      Group alone;
      alone.inline_write = true;
      Prepare(alone, std::move(op));
      Write(alone);
      continue;
    }
    if (!current.empty() && current.bytes + op.bytes > max_group_bytes_) Flush(current);
    if (!op.overlaps && !current.inline_write) {
      // Its prepare sees every earlier group written and done; the group
      // it joins is written here, after it.
      AwaitWriterIdle();
      current.inline_write = true;
    }
    Prepare(current, std::move(op));
    if (!current.inline_write) {
      // A free writer takes the group at once (so a lone producer's first
      // part is being written while the rest is prepared); a busy one gets
      // whatever was prepared meanwhile.
      absl::MutexLock lock(&mu_);
      if (!WriterBusyLocked()) {
        handed_off_ = std::make_unique<Group>(std::move(current));
        current = Group();
      }
    }
  }
  AwaitWriterIdle();
  absl::MutexLock lock(&mu_);
  writer_stopping_ = true;
}

void Committer::RunWriter() {
  for (;;) {
    std::unique_ptr<Group> group;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return handed_off_ != nullptr || writer_stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (handed_off_ == nullptr) return;
      group = std::move(handed_off_);
      writing_ = true;
    }
    Write(*group);
    group.reset();
    absl::MutexLock lock(&mu_);
    writing_ = false;
  }
}

void Committer::Prepare(Group& group, Op op) {
  if (group.batch == nullptr) group.batch = store_.NewBatch();
  if (op.prepare) op.prepare(*group.batch);
  group.sync |= op.sync;
  group.bytes += op.bytes;
  group.ops.push_back(std::move(op));
}

void Committer::Flush(Group& group) {
  if (group.empty()) return;
  if (group.inline_write) {
    Write(group);  // the writer thread is idle: this group waited for it
  } else {
    absl::MutexLock lock(&mu_);
    auto free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !WriterBusyLocked(); };
    mu_.Await(absl::Condition(&free));
    handed_off_ = std::make_unique<Group>(std::move(group));
  }
  group = Group();
}

void Committer::AwaitWriterIdle() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !WriterBusyLocked(); };
  mu_.Await(absl::Condition(&idle));
}

void Committer::Write(Group& group) {
  const absl::Time start = absl::Now();
  absl::Status status = absl::OkStatus();
  if (group.batch != nullptr && group.batch->Count() > 0) {
    status = store_.Write(*group.batch, group.sync && allow_sync_);
  }
  const size_t mutations = group.batch != nullptr ? group.batch->Count() : 0;
  if (observer_) observer_(group.ops.size(), mutations, absl::Now() - start);
  for (Op& op : group.ops) {
    if (op.done) op.done(status);
  }
}

}  // namespace pettube::broker
