#include "services/media-catalog/rocksdb_media_store.h"

#include <filesystem>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/storage/rocksdb_status.h"
#include "openssl/rand.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"

namespace pettube::catalog {
namespace {

constexpr char kSecretKey[] = "secret/page_token";

using ::pettube::storage::FromRocksDb;

rocksdb::Slice S(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

absl::Status UnparsableRecord(absl::string_view media_id) {
  return absl::DataLossError(absl::StrCat("media/", media_id, ": stored record does not parse"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbMediaStore>> RocksDbMediaStore::Open(const std::string& dir,
                                                                           Options options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("media store ", dir, ": ", ec.message()));
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  db_options.keep_log_file_num = 2;
  if (options.row_cache_bytes > 0) {
    db_options.row_cache = rocksdb::NewLRUCache(options.row_cache_bytes);
  }
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  // Point lookups by media id and applied-event key: a bloom filter spares
  // a block read for every key that is absent (each new event's check).
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {"records", cf_options},
      {"owner_index", cf_options},
      {"public_index", cf_options},
      {"applied", cf_options},
      {"outbox", cf_options},
  };
  auto store = std::unique_ptr<RocksDbMediaStore>(new RocksDbMediaStore());
  store->options_ = options;
  if (options.record_cache_bytes > 0) {
    store->record_cache_ = std::make_unique<RecordCache>(options.record_cache_bytes);
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, descriptors, &store->handles_, &db);
  if (!s.ok()) return FromRocksDb(s, absl::StrCat("open media store ", dir));
  store->db_.reset(db);
  store->records_ = store->handles_[1];
  store->owner_index_ = store->handles_[2];
  store->public_index_ = store->handles_[3];
  store->applied_ = store->handles_[4];
  store->outbox_ = store->handles_[5];
  return store;
}

RocksDbMediaStore::~RocksDbMediaStore() {
  if (db_ == nullptr) return;
  for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
  db_->Close();
}

absl::Mutex& RocksDbMediaStore::StripeFor(absl::string_view media_id) {
  return stripes_[absl::Hash<absl::string_view>()(media_id) % kStripes];
}

absl::Status RocksDbMediaStore::Commit(rocksdb::WriteBatch& batch, absl::string_view what) {
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  return FromRocksDb(db_->Write(write_options, &batch), what);
}

absl::Status RocksDbMediaStore::Read(absl::string_view media_id, StoredMedia* out) {
  auto read = ReadWith(rocksdb::ReadOptions(), media_id, out);
  return read.ok() ? absl::OkStatus() : read.status();
}

absl::StatusOr<bool> RocksDbMediaStore::ReadFromMemory(absl::string_view media_id,
                                                       StoredMedia* out) {
  rocksdb::ReadOptions memory_only;
  // RocksDB answers Incomplete instead of reading a table file.
  memory_only.read_tier = rocksdb::kBlockCacheTier;
  return ReadWith(memory_only, media_id, out);
}

absl::StatusOr<bool> RocksDbMediaStore::ReadWith(const rocksdb::ReadOptions& read_options,
                                                 absl::string_view media_id, StoredMedia* out) {
  if (record_cache_ != nullptr) {
    std::string bytes;
    if (record_cache_->Get(media_id, &bytes)) {
      // The cache holds the stored bytes: the same error as from the table.
      if (!out->ParseFromString(bytes)) return UnparsableRecord(media_id);
      return true;
    }
  }
  // Pinned: parsed straight from the block cache, no copy of the value.
  rocksdb::PinnableSlice value;
  rocksdb::Status s = GetRecord(read_options, media_id, &value);
  // Incomplete means "needs I/O" only for a memory-only read; otherwise it
  // is an error like any other.
  if (s.IsIncomplete() && read_options.read_tier == rocksdb::kBlockCacheTier) return false;
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("media/", media_id, ": no record"));
  if (!s.ok()) return FromRocksDb(s, "read media record");
  if (!out->ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return UnparsableRecord(media_id);
  }
  return true;
}

rocksdb::Status RocksDbMediaStore::GetRecord(const rocksdb::ReadOptions& read_options,
                                             absl::string_view media_id,
                                             rocksdb::PinnableSlice* value) {
  // Taken before the read: a write that lands during it keeps the read's
  // result out of the cache (ticketed_cache.h).
  const uint64_t ticket = record_cache_ != nullptr ? record_cache_->Ticket(media_id) : 0;
  rocksdb::Status s = db_->Get(read_options, records_, S(media_id), value);
  if (s.ok() && record_cache_ != nullptr) {
    record_cache_->Fill(media_id, std::string(value->data(), value->size()), ticket);
  }
  return s;
}

absl::StatusOr<bool> RocksDbMediaStore::IsApplied(absl::string_view event_key) {
  return IsAppliedLocked(event_key);
}

absl::StatusOr<bool> RocksDbMediaStore::IsAppliedLocked(absl::string_view event_key) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), applied_, S(event_key), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return FromRocksDb(s, "read applied events");
  return true;
}

absl::Status RocksDbMediaStore::Write(const StoredMedia& record, uint64_t expected_version,
                                      absl::string_view event_key,
                                      const io::cloudevents::v1::CloudEvent* outbox) {
  if (record.media_id().empty()) return absl::InvalidArgumentError("record.media_id: empty");
  if (record.version() != expected_version + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("record.version: must be ", expected_version + 1, ", is ", record.version()));
  }
  absl::MutexLock lock(&StripeFor(record.media_id()));
  if (!event_key.empty()) {
    auto applied = IsAppliedLocked(event_key);
    if (!applied.ok()) return applied.status();
    if (*applied) return absl::AlreadyExistsError("event already applied");
  }
  StoredMedia old;
  uint64_t current_version = 0;
  if (auto got = Get(record.media_id()); got.ok()) {
    old = std::move(*got);
    current_version = old.version();
  } else if (!absl::IsNotFound(got.status())) {
    return got.status();
  }
  if (current_version != expected_version) {
    return absl::AbortedError(absl::StrCat("media/", record.media_id(), ": version is ",
                                           current_version, ", not ", expected_version));
  }
  rocksdb::WriteBatch batch;
  if (IsListed(old)) batch.Delete(owner_index_, OwnerIndexKey(old));
  if (IsPublicListed(old)) batch.Delete(public_index_, PublicIndexKey(old));
  if (IsListed(record)) batch.Put(owner_index_, OwnerIndexKey(record), "");
  if (IsPublicListed(record)) batch.Put(public_index_, PublicIndexKey(record), "");
  const std::string bytes = record.SerializeAsString();
  batch.Put(records_, record.media_id(), bytes);
  if (!event_key.empty()) batch.Put(applied_, S(event_key), "");
  if (outbox != nullptr) batch.Put(outbox_, outbox->id(), outbox->SerializeAsString());
  absl::Status committed = Commit(batch, "write media record");
  // Under the record's stripe lock, so the cache sees its writes in commit
  // order. A failed commit may still have reached the memtable (a failed
  // fsync): the cache forgets the record rather than guess.
  if (record_cache_ != nullptr) {
    if (committed.ok()) {
      record_cache_->Put(record.media_id(), bytes);
    } else {
      record_cache_->Erase(record.media_id());
    }
  }
  if (options_.on_record_written) options_.on_record_written(record.media_id());
  return committed;
}

absl::StatusOr<std::vector<io::cloudevents::v1::CloudEvent>> RocksDbMediaStore::Outbox() {
  std::vector<io::cloudevents::v1::CloudEvent> events;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), outbox_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    io::cloudevents::v1::CloudEvent event;
    if (!event.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      // A damaged entry must not hold back the others (nor stop a start).
      log::Error("catalog.outbox_unreadable", {{"event_id", it->key().ToString()}});
      continue;
    }
    events.push_back(std::move(event));
  }
  if (!it->status().ok()) return FromRocksDb(it->status(), "read the outbox");
  return events;
}

absl::Status RocksDbMediaStore::RemoveFromOutbox(absl::string_view event_id) {
  // Unsynced: forgotten in a crash, the event is only published again.
  rocksdb::WriteOptions write_options;
  write_options.sync = false;
  return FromRocksDb(db_->Delete(write_options, outbox_, S(event_id)), "remove an outbox event");
}

absl::Status RocksDbMediaStore::MarkApplied(absl::string_view media_id,
                                            absl::string_view event_key) {
  absl::MutexLock lock(&StripeFor(media_id));
  auto applied = IsAppliedLocked(event_key);
  if (!applied.ok()) return applied.status();
  if (*applied) return absl::AlreadyExistsError("event already applied");
  rocksdb::WriteBatch batch;
  batch.Put(applied_, S(event_key), "");
  return Commit(batch, "mark event applied");
}

absl::StatusOr<ScanResult> RocksDbMediaStore::Scan(const ScanRequest& request) {
  if (request.limit < 1) return absl::InvalidArgumentError("scan.limit: must be at least 1");
  rocksdb::ColumnFamilyHandle* cf = records_;
  std::string prefix;
  switch (request.index) {
    case MediaIndex::kOwner:
      if (request.owner.empty()) return absl::InvalidArgumentError("scan.owner: empty");
      cf = owner_index_;
      prefix = OwnerIndexPrefix(request.owner);
      break;
    case MediaIndex::kPublic:
      cf = public_index_;
      break;
    case MediaIndex::kAll:
      cf = records_;
      break;
  }
  if (!request.after.empty() && !absl::StartsWith(request.after, prefix)) {
    return absl::InvalidArgumentError("scan.after: not in the scanned index range");
  }
  ScanResult result;
  result.last_key = request.after;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
  it->Seek(request.after.empty() ? prefix : request.after);
  if (!request.after.empty() && it->Valid() && it->key() == request.after) it->Next();
  int scanned = 0;
  for (; it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (static_cast<int>(result.media.size()) >= request.limit || scanned >= request.max_scan) {
      return result;  // more may follow
    }
    ++scanned;
    result.last_key = it->key().ToString();
    StoredMedia media;
    if (request.index == MediaIndex::kAll) {
      if (!media.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
        return absl::DataLossError(
            absl::StrCat("media/", it->key().ToString(), ": stored record does not parse"));
      }
      if (!IsListed(media)) continue;
    } else {
      const size_t id_at = prefix.size() + 8;
      if (it->key().size() <= id_at) return absl::DataLossError("index entry too short");
      auto got = Get(absl::string_view(it->key().data() + id_at, it->key().size() - id_at));
      if (absl::IsNotFound(got.status())) continue;  // raced a delete
      if (!got.ok()) return got.status();
      media = std::move(*got);
    }
    if (request.filter && !request.filter(media)) continue;
    result.media.push_back(std::move(media));
  }
  if (!it->status().ok()) return FromRocksDb(it->status(), "scan media");
  result.end = true;
  return result;
}

absl::Status RocksDbMediaStore::Checkpoint(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  if (!s.ok()) return FromRocksDb(s, "checkpoint");
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocksDb(checkpoint->CreateCheckpoint(dir), absl::StrCat("checkpoint into ", dir));
}

absl::StatusOr<std::string> RocksDbMediaStore::Secret() {
  absl::MutexLock lock(&secret_mu_);
  if (!secret_.empty()) return secret_;
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kSecretKey, &value);
  if (s.ok() && value.size() == 32) {
    secret_ = value;
    return secret_;
  }
  if (!s.ok() && !s.IsNotFound()) return FromRocksDb(s, "read secret");
  value.resize(32);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(value.data()), 32) != 1) {
    return absl::InternalError("RAND_bytes failed: no secret for page tokens");
  }
  rocksdb::WriteBatch batch;
  batch.Put(kSecretKey, value);
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  if (auto st = FromRocksDb(db_->Write(write_options, &batch), "write secret"); !st.ok()) return st;
  secret_ = value;
  return secret_;
}

absl::StatusOr<bool> RocksDbMediaStore::IsEmpty() {
  for (auto* cf : {records_, applied_}) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
    it->SeekToFirst();
    if (it->Valid()) return false;
    if (!it->status().ok()) return FromRocksDb(it->status(), "scan store");
  }
  return true;
}

absl::Status RocksDbMediaStore::CompactAll() {
  rocksdb::CompactRangeOptions options;
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    rocksdb::Status s = db_->CompactRange(options, handle, nullptr, nullptr);
    if (!s.ok()) return FromRocksDb(s, "compact media store");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RocksDbMediaStore::WarmCaches() {
  if (options_.row_cache_bytes == 0 && record_cache_ == nullptr) {
    return absl::FailedPreconditionError(
        "warm the caches: the store has neither a row cache nor a record cache");
  }
  // The row cache is filled by point reads only, so each record is read once.
  int64_t read = 0;
  absl::Status visited = ForEachRecordId([&](absl::string_view id) {
    rocksdb::PinnableSlice value;
    rocksdb::Status s = GetRecord(rocksdb::ReadOptions(), id, &value);
    if (!s.ok() && !s.IsNotFound()) return FromRocksDb(s, "warm the caches: read record");
    ++read;
    return absl::OkStatus();
  });
  if (!visited.ok()) return visited;
  return read;
}

absl::Status RocksDbMediaStore::ForEachRecordId(
    const std::function<absl::Status(absl::string_view)>& visit) {
  // Listed in chunks and each chunk visited before the next is listed:
  // the iterator never steps while `visit` reads or writes.
  constexpr size_t kChunk = 1024;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), records_));
  std::vector<std::string> keys;
  keys.reserve(kChunk);
  it->SeekToFirst();
  while (true) {
    keys.clear();
    for (; it->Valid() && keys.size() < kChunk; it->Next()) keys.push_back(it->key().ToString());
    if (!it->status().ok()) return FromRocksDb(it->status(), "list records");
    if (keys.empty()) return absl::OkStatus();
    for (const std::string& key : keys) {
      if (absl::Status s = visit(key); !s.ok()) return s;
    }
  }
}

absl::StatusOr<uint64_t> RocksDbMediaStore::ApproximateBytes() {
  uint64_t total = 0;
  for (auto* cf : handles_) {
    uint64_t size = 0;
    if (!db_->GetIntProperty(cf, rocksdb::DB::Properties::kTotalSstFilesSize, &size)) {
      return absl::InternalError("rocksdb: no total-sst-files-size property");
    }
    total += size;
  }
  return total;
}

}  // namespace pettube::catalog
