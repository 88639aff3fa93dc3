#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "services/broker/broker_store.h"

namespace pettube::broker {

// BrokerStore on an embedded RocksDB, a column family per record kind (see
// BrokerStore). Durable writes sync the WAL; the broker's committer groups
// many publishers into one synced write, so fsyncs are shared.
// Thread-safe as BrokerStore says.
class RocksDbBrokerStore : public BrokerStore {
 public:
  // Opens (creating if missing) the store in `dir`. Dedup entries older than
  // `dedup_window` are dropped during compaction. UNAVAILABLE if the
  // directory is locked by another broker.
  static absl::StatusOr<std::unique_ptr<RocksDbBrokerStore>> Open(const std::string& dir,
                                                                  absl::Duration dedup_window);
  ~RocksDbBrokerStore() override;

  std::unique_ptr<Batch> NewBatch() override;
  absl::Status Write(Batch& batch, bool sync) override;
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

 private:
  RocksDbBrokerStore() = default;

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; destroyed before db_
};

}  // namespace pettube::broker
