#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "services/broker/broker_store.h"

namespace pettube::broker {

// A BrokerStore in memory, with the RocksDB store's semantics (ack floors
// hide the queue entries below them, a batch applies atomically), for tests
// that drive the broker with a FakeClock and for trying an engine change
// against the interface. Nothing survives the object; `sync` changes
// nothing. Write can be made to fail (disk full) with FailWrites.
//
// Thread-safe: one mutex over everything.
class InMemoryBrokerStore : public BrokerStore {
 public:
  std::unique_ptr<Batch> NewBatch() override;
  absl::Status Write(Batch& batch, bool sync) override ABSL_LOCKS_EXCLUDED(mu_);
  // Nothing to make durable.
  absl::Status Sync() override { return absl::OkStatus(); }

  absl::StatusOr<std::optional<StoredEvent>> GetEvent(uint64_t sequence) override;
  absl::Status GetEvents(const std::vector<uint64_t>& sequences,
                         std::vector<std::optional<StoredEvent>>* out) override;
  absl::StatusOr<std::optional<uint64_t>> LookupDedup(absl::string_view source,
                                                      absl::string_view id,
                                                      absl::Time not_before) override;
  absl::Status ScanEvents(uint64_t from,
                          const std::function<bool(const StoredEvent&)>& visit) override;
  absl::Status ScanQueue(uint32_t subscription, uint64_t from, size_t max,
                         std::vector<uint64_t>* out) override;
  absl::StatusOr<int64_t> CountQueue(uint32_t subscription) override;
  uint64_t AckFloor(uint32_t subscription) override;
  absl::StatusOr<std::optional<StoredEvent>> GetOwedCopy(uint32_t subscription,
                                                         uint64_t sequence) override;
  absl::Status LoadPending(
      uint32_t subscription,
      const std::function<void(uint64_t, const storage::PendingRecord&)>& visit) override;
  absl::Status ScanDeadLetters(uint32_t subscription, uint64_t from, size_t max,
                               std::vector<v1::DeadLetter>* out) override;
  absl::StatusOr<int64_t> CountDeadLetters(uint32_t subscription) override;
  absl::StatusOr<std::vector<storage::SubscriptionRecord>> LoadSubscriptions() override;
  absl::StatusOr<uint64_t> LastSequence() override;
  absl::StatusOr<uint32_t> NextSubscriptionId() override;
  absl::StatusOr<uint64_t> FirstSequence() override;
  absl::StatusOr<int64_t> ApproximateEventBytes() override;

  // Writes from now on fail with `status` (OK: they succeed again).
  void FailWrites(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);
  // Successful writes so far.
  int64_t writes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Queue entries kept for a subscription, those below its floor included.
  size_t StoredQueueEntries(uint32_t subscription) const ABSL_LOCKS_EXCLUDED(mu_);

  // The whole state; Batch ops apply to it under mu_.
  struct State {
    std::map<uint64_t, StoredEvent> events;
    // source + '\0' + id -> sequence, publish time.
    absl::flat_hash_map<std::string, std::pair<uint64_t, absl::Time>> dedup;
    // (subscription, sequence).
    std::set<std::pair<uint32_t, uint64_t>> queue;
    std::map<std::pair<uint32_t, uint64_t>, storage::PendingRecord> pending;
    std::map<std::pair<uint32_t, uint64_t>, v1::DeadLetter> dead;
    std::map<std::string, storage::SubscriptionRecord> subscriptions;
    absl::flat_hash_map<uint32_t, uint64_t> floors;
    uint64_t last_sequence = 0;
    uint32_t next_subscription_id = 1;
    int64_t event_bytes = 0;
  };

 private:
  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_writes_ ABSL_GUARDED_BY(mu_);
  int64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pettube::broker
