#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/db.h"
#include "services/transcode-coordinator/job_store.h"

namespace pettube::transcode {

// JobStore in RocksDB, a column family per kind: "media" (media id ->
// MediaRecord), "causes" (cause -> empty), "outbox" (16-digit sequence ->
// CloudEvent; sequence order is publish order). Writes are synced: a
// transition that was acked to the broker must survive a crash.
// Thread-safe.
class RocksDbJobStore : public JobStore {
 public:
  // Opens (creating if missing) the store in `dir`. UNAVAILABLE when
  // another process holds it, DATA_LOSS when corrupt.
  static absl::StatusOr<std::unique_ptr<RocksDbJobStore>> Open(const std::string& dir);
  ~RocksDbJobStore() override;

  absl::StatusOr<std::optional<storage::MediaRecord>> GetMedia(absl::string_view media_id) override;
  absl::StatusOr<bool> HasCause(absl::string_view cause) override;
  absl::Status Commit(const Write& write) override;
  absl::Status RemoveOutbox(const std::vector<std::string>& event_ids) override;
  absl::StatusOr<std::vector<io::cloudevents::v1::CloudEvent>> LoadOutbox() override;

 private:
  RocksDbJobStore() = default;
  // Outbox key of an event id, from the in-memory index; "" when absent.
  std::string OutboxKeyLocked(const std::string& event_id);

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* media_ = nullptr;
  rocksdb::ColumnFamilyHandle* causes_ = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_ = nullptr;

  absl::Mutex mu_;
  uint64_t next_outbox_ ABSL_GUARDED_BY(mu_) = 1;
  // event id -> outbox key.
  absl::flat_hash_map<std::string, std::string> outbox_index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::transcode
