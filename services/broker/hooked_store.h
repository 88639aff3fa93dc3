#pragma once

// A BrokerStore for tests that forwards to a real one and lets a test
// step in: hold a write or a sync (to act inside the window between a
// change's preparation and its write, or its write and its sync) or fail
// it (disk full), and see queue scans.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "services/broker/broker_store.h"

namespace pettube::broker {

// Thread-safe as the store it wraps; hooks are set while no broker runs
// or under their own synchronization.
class HookedStore : public BrokerStore {
 public:
  explicit HookedStore(BrokerStore* inner) : inner_(inner) {}

  // Runs before each write; a non-OK status fails the write unwritten.
  void SetWriteHook(std::function<absl::Status(Batch&)> hook) {
    absl::MutexLock lock(&mu_);
    write_hook_ = std::move(hook);
  }
  // Runs before each scan of the log; a non-OK status fails it.
  void SetScanEventsHook(std::function<absl::Status()> hook) {
    absl::MutexLock lock(&mu_);
    scan_events_hook_ = std::move(hook);
  }
  // Runs after each queue scan.
  void SetScanQueueHook(std::function<void(uint32_t)> hook) {
    absl::MutexLock lock(&mu_);
    scan_hook_ = std::move(hook);
  }
  // Runs before each Sync; a non-OK status fails it unsynced (a disk that
  // fails to flush).
  void SetSyncHook(std::function<absl::Status()> hook) {
    absl::MutexLock lock(&mu_);
    sync_hook_ = std::move(hook);
  }

  std::unique_ptr<Batch> NewBatch() override { return inner_->NewBatch(); }
  absl::Status Write(Batch& batch, bool sync) override {
    const auto hook = Current(write_hook_);
    if (hook) {
      if (absl::Status s = hook(batch); !s.ok()) return s;
    }
    return inner_->Write(batch, sync);
  }
  absl::Status Sync() override {
    const auto hook = Current(sync_hook_);
    if (hook) {
      if (absl::Status s = hook(); !s.ok()) return s;
    }
    return inner_->Sync();
  }
  absl::StatusOr<std::optional<StoredEvent>> GetEvent(uint64_t sequence) override {
    return inner_->GetEvent(sequence);
  }
  absl::Status GetEvents(const std::vector<uint64_t>& sequences,
                         std::vector<std::optional<StoredEvent>>* out) override {
    return inner_->GetEvents(sequences, out);
  }
  // Runs before each dedup lookup in the store (a publish being prepared).
  void SetDedupLookupHook(std::function<void()> hook) {
    absl::MutexLock lock(&mu_);
    dedup_lookup_hook_ = std::move(hook);
  }
  absl::StatusOr<std::optional<uint64_t>> LookupDedup(absl::string_view source,
                                                      absl::string_view id,
                                                      absl::Time not_before) override {
    const auto hook = Current(dedup_lookup_hook_);
    if (hook) hook();
    return inner_->LookupDedup(source, id, not_before);
  }
  absl::Status ScanEvents(uint64_t from,
                          const std::function<bool(const StoredEvent&)>& visit) override {
    const auto hook = Current(scan_events_hook_);
    if (hook) {
      if (absl::Status s = hook(); !s.ok()) return s;
    }
    return inner_->ScanEvents(from, visit);
  }
  absl::Status ScanQueue(uint32_t subscription, uint64_t from, size_t max,
                         std::vector<uint64_t>* out) override {
    absl::Status s = inner_->ScanQueue(subscription, from, max, out);
    const auto hook = Current(scan_hook_);
    if (hook) hook(subscription);
    return s;
  }
  absl::StatusOr<int64_t> CountQueue(uint32_t subscription) override {
    return inner_->CountQueue(subscription);
  }
  uint64_t AckFloor(uint32_t subscription) override { return inner_->AckFloor(subscription); }
  absl::StatusOr<std::optional<StoredEvent>> GetOwedCopy(uint32_t subscription,
                                                         uint64_t sequence) override {
    return inner_->GetOwedCopy(subscription, sequence);
  }
  absl::Status LoadPending(
      uint32_t subscription,
      const std::function<void(uint64_t, const storage::PendingRecord&)>& visit) override {
    return inner_->LoadPending(subscription, visit);
  }
  absl::Status ScanDeadLetters(uint32_t subscription, uint64_t from, size_t max,
                               std::vector<v1::DeadLetter>* out) override {
    return inner_->ScanDeadLetters(subscription, from, max, out);
  }
  absl::StatusOr<int64_t> CountDeadLetters(uint32_t subscription) override {
    return inner_->CountDeadLetters(subscription);
  }
  absl::StatusOr<std::vector<storage::SubscriptionRecord>> LoadSubscriptions() override {
    return inner_->LoadSubscriptions();
  }
  absl::StatusOr<uint64_t> LastSequence() override { return inner_->LastSequence(); }
  absl::StatusOr<uint32_t> NextSubscriptionId() override { return inner_->NextSubscriptionId(); }
  absl::StatusOr<uint64_t> FirstSequence() override { return inner_->FirstSequence(); }
  absl::StatusOr<int64_t> ApproximateEventBytes() override {
    return inner_->ApproximateEventBytes();
  }

 private:
  // A copy of `hook` taken under the lock: it runs outside it, since a
  // test's hook may block.
  template <typename Hook>
  Hook Current(const Hook& hook) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return hook;
  }

  BrokerStore* const inner_;
  absl::Mutex mu_;
  std::function<absl::Status(Batch&)> write_hook_ ABSL_GUARDED_BY(mu_);
  std::function<void(uint32_t)> scan_hook_ ABSL_GUARDED_BY(mu_);
  std::function<void()> dedup_lookup_hook_ ABSL_GUARDED_BY(mu_);
  std::function<absl::Status()> scan_events_hook_ ABSL_GUARDED_BY(mu_);
  std::function<absl::Status()> sync_hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::broker
