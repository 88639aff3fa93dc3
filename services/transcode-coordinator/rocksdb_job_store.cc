#include "services/transcode-coordinator/rocksdb_job_store.h"

#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/storage/rocksdb_status.h"
#include "rocksdb/write_batch.h"

namespace pettube::transcode {

using ::io::cloudevents::v1::CloudEvent;

absl::StatusOr<std::unique_ptr<RocksDbJobStore>> RocksDbJobStore::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("job store ", dir, ": ", ec.message()));
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.max_background_jobs = 1;
  options.info_log_level = rocksdb::WARN_LEVEL;
  options.keep_log_file_num = 2;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"media", rocksdb::ColumnFamilyOptions()},
      {"causes", rocksdb::ColumnFamilyOptions()},
      {"outbox", rocksdb::ColumnFamilyOptions()}};
  auto store = std::unique_ptr<RocksDbJobStore>(new RocksDbJobStore());
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, families, &store->handles_, &db);
  if (!s.ok()) return pettube::storage::FromRocksDb(s, absl::StrCat("open job store ", dir));
  store->db_.reset(db);
  store->media_ = store->handles_[1];
  store->causes_ = store->handles_[2];
  store->outbox_ = store->handles_[3];
  // Rebuild the outbox index and the next sequence.
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), store->outbox_));
  absl::MutexLock lock(&store->mu_);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    CloudEvent event;
    uint64_t seq = 0;
    if (!absl::SimpleAtoi(it->key().ToString(), &seq)) continue;
    store->next_outbox_ = std::max(store->next_outbox_, seq + 1);
    if (event.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      store->outbox_index_[event.id()] = it->key().ToString();
    }
  }
  if (!it->status().ok()) return pettube::storage::FromRocksDb(it->status(), "read outbox");
  return store;
}

RocksDbJobStore::~RocksDbJobStore() {
  if (db_ == nullptr) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
}

absl::StatusOr<std::optional<storage::MediaRecord>> RocksDbJobStore::GetMedia(
    absl::string_view media_id) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), media_,
                               rocksdb::Slice(media_id.data(), media_id.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "read media record");
  storage::MediaRecord record;
  if (!record.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("media record ", media_id, ": unparseable"));
  }
  return record;
}

absl::StatusOr<bool> RocksDbJobStore::HasCause(absl::string_view cause) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), causes_, rocksdb::Slice(cause.data(), cause.size()), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "read cause");
  return true;
}

std::string RocksDbJobStore::OutboxKeyLocked(const std::string& event_id) {
  auto it = outbox_index_.find(event_id);
  return it == outbox_index_.end() ? "" : it->second;
}

absl::Status RocksDbJobStore::Commit(const Write& write) {
  rocksdb::WriteBatch batch;
  batch.Put(media_, write.media.media_id(), write.media.SerializeAsString());
  if (!write.cause.empty()) batch.Put(causes_, write.cause, "");
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, std::string>> added;
  uint64_t next = next_outbox_;
  for (const CloudEvent& event : write.outbox_add) {
    // An event already waiting (same id) is not queued twice.
    if (!OutboxKeyLocked(event.id()).empty()) continue;
    const std::string key = absl::StrFormat("%016d", next++);
    batch.Put(outbox_, key, event.SerializeAsString());
    added.emplace_back(event.id(), key);
  }
  std::vector<std::string> removed;
  for (const std::string& id : write.outbox_remove) {
    const std::string key = OutboxKeyLocked(id);
    if (key.empty()) continue;
    batch.Delete(outbox_, key);
    removed.push_back(id);
  }
  rocksdb::WriteOptions options;
  options.sync = true;
  rocksdb::Status s = db_->Write(options, &batch);
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "commit transition");
  next_outbox_ = next;
  for (auto& [id, key] : added) outbox_index_[id] = key;
  for (auto& id : removed) outbox_index_.erase(id);
  return absl::OkStatus();
}

absl::Status RocksDbJobStore::RemoveOutbox(const std::vector<std::string>& event_ids) {
  rocksdb::WriteBatch batch;
  absl::MutexLock lock(&mu_);
  std::vector<std::string> removed;
  for (const std::string& id : event_ids) {
    const std::string key = OutboxKeyLocked(id);
    if (key.empty()) continue;
    batch.Delete(outbox_, key);
    removed.push_back(id);
  }
  if (removed.empty()) return absl::OkStatus();
  // Not synced: losing a removal only republishes an event the broker
  // deduplicates.
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "remove outbox entries");
  for (auto& id : removed) outbox_index_.erase(id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CloudEvent>> RocksDbJobStore::LoadOutbox() {
  std::vector<CloudEvent> events;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), outbox_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    CloudEvent event;
    if (!event.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(
          absl::StrCat("outbox entry ", it->key().ToString(), ": unparseable"));
    }
    events.push_back(std::move(event));
  }
  if (!it->status().ok()) return pettube::storage::FromRocksDb(it->status(), "read outbox");
  return events;
}

}  // namespace pettube::transcode
