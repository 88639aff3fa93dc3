#pragma once

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/db.h"
#include "services/media-catalog/media_store.h"
#include "services/media-catalog/record_cache.h"

namespace pettube::catalog {

// MediaStore on RocksDB. Column families:
//   records       media id -> StoredMedia (protobuf), tombstones included
//   owner_index   owner \0 inverted create time media id -> "" (newest first)
//   public_index  inverted create time media id -> "" (PUBLIC only)
//   applied       event source \n id -> "" (exactly-once marker)
//   default       the page-token secret
// Each Write is one WriteBatch of record, index changes and applied marker,
// so a crash never leaves half an update. Writes to one media item are
// serialized by a striped lock (the version check and the write are one
// step); writes to different items run side by side and share RocksDB's
// group commit.
//
// Thread-safe. Owns the DB.
class RocksDbMediaStore : public MediaStore {
 public:
  struct Options {
    // fsync before a write returns: an acked event survives power loss, not
    // only a process crash.
    bool sync = true;
    // Block cache shared by the column families (reads of hot records
    // and index blocks stay in memory).
    size_t block_cache_bytes = size_t{128} << 20;
    // RocksDB's row cache (0: none): a point read that hits it skips the
    // table lookup (index, filter, block cache, block search) and costs
    // about a hash lookup and a copy of the value. Keyed by table file, so a
    // later write is never hidden by it. Sized to the records it should
    // hold: about 1.4 KB of memory per record of the benchmark's shape.
    size_t row_cache_bytes = 0;
    // Our own cache of serialized records (0: none), consulted before
    // RocksDB: a hit costs a hash lookup and a copy, and touches less
    // memory than a row cache hit (record_cache.h). Kept exact by Write.
    // About 1.2 KB of memory per record of the benchmark's shape.
    size_t record_cache_bytes = 0;
    // Called with the record's id after every Write that reached its
    // commit, committed or not, once readers see the result (under the
    // record's write lock, after the record cache): a cache of what is
    // derived from records (CatalogService's rendered responses) forgets
    // it. Must be quick; it may read the store, never write it.
    std::function<void(absl::string_view media_id)> on_record_written;
  };

  // Opens (creating if missing) the store in `dir`. UNAVAILABLE when another
  // process holds it, DATA_LOSS on corruption, INTERNAL otherwise.
  static absl::StatusOr<std::unique_ptr<RocksDbMediaStore>> Open(const std::string& dir,
                                                                 Options options);
  ~RocksDbMediaStore() override;

  absl::Status Read(absl::string_view media_id, StoredMedia* out) override;
  // From the memtables, the row cache and the block cache only.
  absl::StatusOr<bool> ReadFromMemory(absl::string_view media_id, StoredMedia* out) override;
  absl::StatusOr<bool> IsApplied(absl::string_view event_key) override;
  using MediaStore::Write;
  absl::Status Write(const StoredMedia& record, uint64_t expected_version,
                     absl::string_view event_key,
                     const io::cloudevents::v1::CloudEvent* outbox) override;
  absl::StatusOr<std::vector<io::cloudevents::v1::CloudEvent>> Outbox() override;
  absl::Status RemoveFromOutbox(absl::string_view event_id) override;
  absl::Status MarkApplied(absl::string_view media_id, absl::string_view event_key) override;
  absl::StatusOr<ScanResult> Scan(const ScanRequest& request) override;
  absl::Status Checkpoint(const std::string& dir) override;
  absl::StatusOr<std::string> Secret() override;
  absl::StatusOr<bool> IsEmpty() override;

  // Total size of the SST and WAL files (benchmarks: bytes per record).
  absl::StatusOr<uint64_t> ApproximateBytes();
  // Compacts every column family down to one sorted run (after a bulk load,
  // e.g. the benchmark's seed, so reads meet a settled store rather than
  // dozens of level-0 files and a compaction in progress).
  absl::Status CompactAll();
  // Reads every record once, in key order, so the row cache and the record
  // cache hold as many as fit (a restarted node then serves its first reads
  // from memory). Returns how many were read. FAILED_PRECONDITION with
  // neither cache.
  absl::StatusOr<int64_t> WarmCaches();
  // Calls `visit` with every record's id, in key order; stops at the first
  // error it returns. `visit` may read and write the store.
  absl::Status ForEachRecordId(const std::function<absl::Status(absl::string_view)>& visit);

 private:
  static constexpr int kStripes = 64;

  RocksDbMediaStore() = default;
  absl::Mutex& StripeFor(absl::string_view media_id);
  absl::StatusOr<bool> IsAppliedLocked(absl::string_view event_key);
  // Read or ReadFromMemory: false only when `read_options` forbid I/O
  // (kBlockCacheTier) and the record needs it.
  absl::StatusOr<bool> ReadWith(const rocksdb::ReadOptions& read_options,
                                absl::string_view media_id, StoredMedia* out);
  absl::Status Commit(rocksdb::WriteBatch& batch, absl::string_view what);
  // One record's RocksDB read, its value offered to the record cache when
  // found.
  rocksdb::Status GetRecord(const rocksdb::ReadOptions& read_options, absl::string_view media_id,
                            rocksdb::PinnableSlice* value);

  Options options_;
  std::unique_ptr<RecordCache> record_cache_;  // null without one
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; freed before db_
  rocksdb::ColumnFamilyHandle* records_ = nullptr;
  rocksdb::ColumnFamilyHandle* owner_index_ = nullptr;
  rocksdb::ColumnFamilyHandle* public_index_ = nullptr;
  rocksdb::ColumnFamilyHandle* applied_ = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_ = nullptr;
  std::array<absl::Mutex, kStripes> stripes_;
  absl::Mutex secret_mu_;
  std::string secret_ ABSL_GUARDED_BY(secret_mu_);
};

}  // namespace pettube::catalog
