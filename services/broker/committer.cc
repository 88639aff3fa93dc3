#include "services/broker/committer.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace pettube::broker {

Committer::Committer(BrokerStore& store, bool allow_sync, WriteObserver observer,
                     size_t max_group_bytes)
    : store_(store),
      allow_sync_(allow_sync),
      observer_(std::move(observer)),
      max_group_bytes_(max_group_bytes),
      syncer_([this] { RunSyncer(); }),
      thread_([this] { Run(); }) {}

Committer::~Committer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  syncer_.join();
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
      // An op to prepare, or nothing more queued: write what is prepared.
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty() || !current.empty();
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
      AwaitPipelineIdle();
      Group alone;
      alone.inline_write = true;
      Prepare(alone, std::move(op));
      WriteInline(alone);
      continue;
    }
    if (!current.empty() && current.bytes + op.bytes > max_group_bytes_) Flush(current);
    if (!op.overlaps && !current.inline_write) {
      // Its prepare sees every earlier group written, synced and done; the
      // group it joins is written here, after it.
      AwaitPipelineIdle();
      current.inline_write = true;
    }
    Prepare(current, std::move(op));
    if (!current.inline_write) {
      // An idle syncer gets the group at once (so a lone producer's first
      // part is being synced while the rest is prepared and written); a
      // busy one gets whatever is written by the time it is done.
      bool syncer_idle;
      {
        absl::MutexLock lock(&mu_);
        syncer_idle = written_.empty() && !syncing_;
      }
      if (syncer_idle) Flush(current);
    }
  }
  AwaitPipelineIdle();
  absl::MutexLock lock(&mu_);
  pipeline_stopping_ = true;
}

void Committer::RunSyncer() {
  for (;;) {
    std::vector<std::unique_ptr<Group>> groups;
    absl::Status synced;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !written_.empty() || pipeline_stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (written_.empty()) return;
      groups.swap(written_);
      syncing_ = true;
      synced = sync_failed_;
    }
    bool needs_sync = false;
    for (const auto& g : groups) needs_sync |= g->sync && g->written.ok();
    if (synced.ok() && needs_sync && allow_sync_) {
      // Covers every group taken: each was written before this call.
      synced = store_.Sync();
      if (!synced.ok()) {
        absl::MutexLock lock(&mu_);
        sync_failed_ = absl::Status(
            synced.code(),
            absl::StrCat("an earlier fsync failed, restart the broker: ", synced.message()));
      }
    }
    for (auto& g : groups) Finish(*g, g->written.ok() ? synced : g->written);
    groups.clear();
    absl::MutexLock lock(&mu_);
    syncing_ = false;
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
    WriteInline(group);  // the pipeline is idle: this group waited for it
  } else {
    WriteUnsynced(group);
  }
  group = Group();
}

void Committer::AwaitPipelineIdle() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !PipelineBusyLocked(); };
  mu_.Await(absl::Condition(&idle));
}

absl::Status Committer::SyncFailure() {
  absl::MutexLock lock(&mu_);
  return sync_failed_;
}

void Committer::WriteUnsynced(Group& group) {
  const absl::Status failed = SyncFailure();
  group.write_start = absl::Now();
  if (!failed.ok()) {
    group.written = failed;
  } else if (group.batch != nullptr && group.batch->Count() > 0) {
    // Unsynced: the syncer thread makes it durable, together with whatever
    // else is written by then.
    group.written = store_.Write(*group.batch, /*sync=*/false);
  }
  absl::MutexLock lock(&mu_);
  written_.push_back(std::make_unique<Group>(std::move(group)));
}

void Committer::WriteInline(Group& group) {
  absl::Status status = SyncFailure();
  group.write_start = absl::Now();
  if (status.ok() && group.batch != nullptr && group.batch->Count() > 0) {
    status = store_.Write(*group.batch, group.sync && allow_sync_);
  }
  Finish(group, status);
}

void Committer::Finish(Group& group, const absl::Status& status) {
  const size_t mutations = group.batch != nullptr ? group.batch->Count() : 0;
  if (observer_) observer_(group.ops.size(), mutations, absl::Now() - group.write_start);
  for (Op& op : group.ops) {
    if (op.done) op.done(status);
  }
}

}  // namespace pettube::broker
