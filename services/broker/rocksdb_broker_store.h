#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "services/broker/broker_store.h"
#include "services/broker/dedup_index.h"

namespace pettube::broker {

// Each subscription's ack floor as written, shared by readers, the writer
// and the queue's compaction filter (a background thread).
class AckFloors {
 public:
  uint64_t Get(uint32_t subscription) const ABSL_LOCKS_EXCLUDED(mu_);
  void Set(uint32_t subscription, uint64_t floor) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint32_t, uint64_t> floors_ ABSL_GUARDED_BY(mu_);
};

// BrokerStore on an embedded RocksDB, a column family per record kind (see
// BrokerStore). Durable writes sync the WAL; the broker's committer groups
// many publishers into one synced write, so fsyncs are shared.
// Thread-safe as BrokerStore says.
class RocksDbBrokerStore : public BrokerStore {
 public:
  struct Options {
    // Dedup entries older than this are not found, and dropped.
    absl::Duration dedup_window = absl::Hours(24);
    // False: the broker never fsyncs (--sync=false), so a write counts as
    // durable once written (its dedup entries may go to run files).
    bool sync = true;
    // RocksDB's memory, two parts of one bound: one LRU cache of
    // `write_buffer_bytes + block_cache_bytes` holds the data, index and
    // filter blocks read, and a WriteBufferManager charges every column
    // family's memtables to it, flushing when they pass
    // `write_buffer_bytes`. Blocks get what the memtables leave. The log's
    // memtables flush at a third of `write_buffer_bytes` (up to three at
    // once), the other column families' at half.
    size_t write_buffer_bytes = 16 << 20;
    size_t block_cache_bytes = 8 << 20;
    // The dedup table's in-memory segments: two of them (one filling, one
    // being written) fit in it.
    size_t dedup_index_bytes = 2 << 20;
    // Called on a RocksDB thread after each flush and compaction, which
    // free memtables and compaction buffers in bulk (main.cc hands the
    // freed pages back to the OS with it). Null: nothing.
    std::function<void()> after_background_work;
  };

  // What RocksDB holds in memory now, bytes.
  struct MemoryUsage {
    int64_t memtables = 0;      // active, immutable and pinned, all column families
    int64_t block_cache = 0;    // the cache's whole usage (memtable charges included)
    int64_t table_readers = 0;  // outside the cache (open files' metadata)
    int64_t dedup_index = 0;    // the DedupIndex's segments, filters and fences
  };

  // The least each part of Options may be: below it RocksDB flushes
  // memtables of a few hundred KiB and re-reads index blocks constantly.
  static constexpr size_t kMinWriteBufferBytes = 2 << 20;
  static constexpr size_t kMinBlockCacheBytes = 1 << 20;

  // Opens (creating if missing) the store in `dir`. INVALID_ARGUMENT for
  // memory below the minimums, UNAVAILABLE if the
  // directory is locked by another broker.
  static absl::StatusOr<std::unique_ptr<RocksDbBrokerStore>> Open(const std::string& dir,
                                                                  const Options& options);
  static absl::StatusOr<std::unique_ptr<RocksDbBrokerStore>> Open(const std::string& dir,
                                                                  absl::Duration dedup_window);
  ~RocksDbBrokerStore() override;

  std::unique_ptr<Batch> NewBatch() override;
  absl::Status Write(Batch& batch, bool sync) override;
  absl::Status Sync() override;  // SyncWAL
  absl::StatusOr<std::optional<StoredEvent>> GetEvent(uint64_t sequence) override;
  absl::Status GetEvents(const std::vector<uint64_t>& sequences,
                         std::vector<std::optional<StoredEvent>>* out) override;
  absl::StatusOr<std::optional<uint64_t>> LookupDedup(absl::string_view source,
                                                      absl::string_view id,
                                                      absl::Time not_before) override;
  // One MultiGet: most publishes miss, and a batch shares the filter and
  // index probes of each file.
  absl::Status LookupDedups(
      const std::vector<std::pair<absl::string_view, absl::string_view>>& source_ids,
      absl::Time not_before, std::vector<std::optional<uint64_t>>* out) override;
  absl::Status ScanEvents(uint64_t from,
                          const std::function<bool(const StoredEvent&)>& visit) override;
  absl::Status ScanQueue(uint32_t subscription, uint64_t from, size_t max,
                         std::vector<uint64_t>* out) override;
  absl::StatusOr<int64_t> CountQueue(uint32_t subscription) override;
  absl::StatusOr<std::optional<StoredEvent>> GetOwedCopy(uint32_t subscription,
                                                         uint64_t sequence) override;
  uint64_t AckFloor(uint32_t subscription) override;
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

  // Compacts the queue now, which drops the entries below each ack floor
  // (normally left to RocksDB's background compactions); for operators
  // and tests.
  absl::Status CompactQueue();
  // Queue entries physically stored for a subscription, settled or not.
  absl::StatusOr<int64_t> CountStoredQueueEntries(uint32_t subscription);

  MemoryUsage GetMemoryUsage();

 private:
  RocksDbBrokerStore() = default;
  // Entries of a subscription at or after `from` in one column family.
  absl::StatusOr<int64_t> CountFrom(size_t column_family, uint32_t subscription, uint64_t from,
                                    absl::string_view what);

  absl::Status OpenDedupIndex(const std::string& dir, const Options& options);

  // The dedup table (the `dedup` column family holds only what brokers
  // before it wrote, looked up while `legacy_dedup_`).
  std::unique_ptr<DedupIndex> dedup_;
  bool fsync_ = true;
  bool legacy_dedup_ = false;
  // The highest sequence a finished write holds.
  std::atomic<uint64_t> written_through_{0};
  // Before db_: the compaction filter reads it until the database closes.
  AckFloors floors_;
  std::unique_ptr<rocksdb::CompactionFilter> queue_filter_;
  std::unique_ptr<rocksdb::CompactionFilter> dedup_filter_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; destroyed before db_
};

}  // namespace pettube::broker
