#include "services/broker/rocksdb_broker_store.h"

#include <algorithm>
#include <utility>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "libs/storage/rocksdb_status.h"
#include "rocksdb/cache.h"
#include "rocksdb/compaction_filter.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/listener.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/write_buffer_manager.h"

namespace pettube::broker {
namespace {

enum Cf { kMeta = 0, kEvents, kDedup, kQueue, kPending, kDead, kCfCount };
const char* const kCfNames[kCfCount] = {
    rocksdb::kDefaultColumnFamilyName.c_str(), "events", "dedup", "queue", "pending", "dead"};

constexpr char kLastSequenceKey[] = "last_sequence";
constexpr char kNextSubscriptionIdKey[] = "next_subscription_id";
constexpr char kSubscriptionPrefix[] = "subscription/";
constexpr char kAckFloorPrefix[] = "ack_floor/";

// Big-endian keys sort numerically.
std::string SeqKey(uint64_t seq) {
  std::string k(8, '\0');
  absl::big_endian::Store64(k.data(), seq);
  return k;
}

std::string SubKey(uint32_t sub, uint64_t seq) {
  std::string k(12, '\0');
  absl::big_endian::Store32(k.data(), sub);
  absl::big_endian::Store64(k.data() + 4, seq);
  return k;
}

std::string SubPrefix(uint32_t sub) {
  std::string k(4, '\0');
  absl::big_endian::Store32(k.data(), sub);
  return k;
}

uint64_t SeqOfSubKey(const rocksdb::Slice& key) { return absl::big_endian::Load64(key.data() + 4); }

std::string DedupKey(absl::string_view source, absl::string_view id) {
  return absl::StrCat(source, absl::string_view("\0", 1), id);
}

std::string AckFloorKey(uint32_t sub) { return absl::StrCat(kAckFloorPrefix, SubPrefix(sub)); }

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }

// A dedup entry's sequence (its value: sequence, then publish time), if
// it was published at `not_before` or later.
std::optional<uint64_t> DecodeDedup(const rocksdb::Slice& value, absl::Time not_before) {
  if (value.size() < 16) return std::nullopt;
  const absl::Time at =
      absl::FromUnixMicros(static_cast<int64_t>(absl::little_endian::Load64(value.data() + 8)));
  if (at < not_before) return std::nullopt;
  return absl::little_endian::Load64(value.data());
}

// The event's bytes are kept as they are (not parsed): they go out in
// deliveries unchanged.
bool DecodeEvent(uint64_t sequence, const rocksdb::Slice& value, StoredEvent* e) {
  if (value.size() < 8) return false;
  e->sequence = sequence;
  e->publish_time =
      absl::FromUnixMicros(static_cast<int64_t>(absl::little_endian::Load64(value.data())));
  e->wire.assign(value.data() + 8, value.size() - 8);
  return true;
}

// Drops dedup entries older than the window, so the dedup table stays
// bounded without a scan. Lookups also check the time, as entries live
// until their file is compacted.
class DedupExpiryFilter : public rocksdb::CompactionFilter {
 public:
  explicit DedupExpiryFilter(absl::Duration window) : window_(window) {}
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*,
              bool*) const override {
    if (value.size() < 16) return true;
    const int64_t micros = static_cast<int64_t>(absl::little_endian::Load64(value.data() + 8));
    return absl::FromUnixMicros(micros) < absl::Now() - window_;
  }
  const char* Name() const override { return "pettube.DedupExpiryFilter"; }

 private:
  absl::Duration window_;
};

// Drops queue entries below their subscription's ack floor: settled, and
// never read again.
class QueueFloorFilter : public rocksdb::CompactionFilter {
 public:
  explicit QueueFloorFilter(const AckFloors& floors) : floors_(floors) {}
  bool Filter(int, const rocksdb::Slice& key, const rocksdb::Slice&, std::string*,
              bool*) const override {
    if (key.size() != 12) return false;
    return SeqOfSubKey(key) < floors_.Get(absl::big_endian::Load32(key.data()));
  }
  const char* Name() const override { return "pettube.QueueFloorFilter"; }

 private:
  const AckFloors& floors_;
};

// Tells Options::after_background_work of finished flushes and compactions.
class BackgroundWorkListener : public rocksdb::EventListener {
 public:
  explicit BackgroundWorkListener(std::function<void()> done) : done_(std::move(done)) {}
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override { done_(); }
  void OnCompactionCompleted(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override { done_(); }

 private:
  const std::function<void()> done_;
};

class RocksDbBatch : public BrokerStore::Batch {
 public:
  explicit RocksDbBatch(const std::vector<rocksdb::ColumnFamilyHandle*>& cf) : cf_(cf) {}

  // Ack floors this batch sets, in order (0: cleared).
  const std::vector<std::pair<uint32_t, uint64_t>>& floors() const { return floors_; }

  void PutEvent(const StoredEvent& e) override {
    // Publish time + CloudEvent, put as two parts: the event's bytes are
    // copied once, into the batch.
    char time[8];
    absl::little_endian::Store64(time, static_cast<uint64_t>(ToMicros(e.publish_time)));
    const std::string key = SeqKey(e.sequence);
    const rocksdb::Slice key_part(key);
    const rocksdb::Slice value_parts[2] = {rocksdb::Slice(time, sizeof(time)),
                                           rocksdb::Slice(e.wire)};
    batch_.Put(cf_[kEvents], rocksdb::SliceParts(&key_part, 1),
               rocksdb::SliceParts(value_parts, 2));
  }
  void DeleteEventsBefore(uint64_t sequence) override {
    batch_.DeleteRange(cf_[kEvents], SeqKey(0), SeqKey(sequence));
    deletes_events_before_ = std::max(deletes_events_before_, sequence);
  }
  // Not written to RocksDB: the store adds it to its DedupIndex once the
  // write succeeds (the event's record, in the same write, is what a
  // restart rebuilds it from).
  void PutDedup(absl::string_view source, absl::string_view id, uint64_t sequence,
                absl::Time publish_time) override {
    dedup_.push_back({DedupKey(source, id), sequence, publish_time});
  }
  void Enqueue(uint32_t sub, uint64_t seq) override {
    batch_.Put(cf_[kQueue], SubKey(sub, seq), rocksdb::Slice());
  }
  void Dequeue(uint32_t sub, uint64_t seq) override {
    batch_.Delete(cf_[kQueue], SubKey(sub, seq));
  }
  void DequeueRange(uint32_t sub, uint64_t from, uint64_t to) override {
    batch_.DeleteRange(cf_[kQueue], SubKey(sub, from), SubKey(sub, to));
  }
  void SetAckFloor(uint32_t sub, uint64_t floor) override {
    batch_.Put(cf_[kMeta], AckFloorKey(sub), SeqKey(floor));
    floors_.emplace_back(sub, floor);
  }
  void PutPending(uint32_t sub, uint64_t seq, const storage::PendingRecord& r) override {
    batch_.Put(cf_[kPending], SubKey(sub, seq), r.SerializeAsString());
  }
  void DeletePending(uint32_t sub, uint64_t seq) override {
    batch_.Delete(cf_[kPending], SubKey(sub, seq));
  }
  void PutDeadLetter(uint32_t sub, const v1::DeadLetter& d) override {
    batch_.Put(cf_[kDead], SubKey(sub, d.sequence()), d.SerializeAsString());
  }
  void DeleteDeadLetter(uint32_t sub, uint64_t seq) override {
    batch_.Delete(cf_[kDead], SubKey(sub, seq));
  }
  void PutSubscription(const storage::SubscriptionRecord& r) override {
    batch_.Put(cf_[kMeta], absl::StrCat(kSubscriptionPrefix, r.subscription().name()),
               r.SerializeAsString());
  }
  void DeleteSubscription(const std::string& name, uint32_t id) override {
    batch_.Delete(cf_[kMeta], absl::StrCat(kSubscriptionPrefix, name));
    batch_.Delete(cf_[kMeta], AckFloorKey(id));
    floors_.emplace_back(id, 0);
    for (Cf cf : {kQueue, kPending, kDead}) {
      batch_.DeleteRange(cf_[cf], SubPrefix(id), SubPrefix(id + 1));
    }
  }
  void ClearQueue(uint32_t id) override {
    batch_.Delete(cf_[kMeta], AckFloorKey(id));
    floors_.emplace_back(id, 0);
    for (Cf cf : {kQueue, kPending}) batch_.DeleteRange(cf_[cf], SubPrefix(id), SubPrefix(id + 1));
  }
  void SetLastSequence(uint64_t seq) override {
    batch_.Put(cf_[kMeta], kLastSequenceKey, SeqKey(seq));
  }
  void SetNextSubscriptionId(uint32_t id) override {
    batch_.Put(cf_[kMeta], kNextSubscriptionIdKey, SubPrefix(id));
  }
  size_t Count() const override { return batch_.Count() + dedup_.size(); }

  rocksdb::WriteBatch& batch() { return batch_; }

  struct DedupEntry {
    std::string key;
    uint64_t sequence;
    absl::Time publish_time;
  };
  std::vector<DedupEntry>& dedup() { return dedup_; }
  // The log's events below this go with the write (0: none).
  uint64_t deletes_events_before() const { return deletes_events_before_; }

 private:
  const std::vector<rocksdb::ColumnFamilyHandle*>& cf_;
  rocksdb::WriteBatch batch_;
  std::vector<std::pair<uint32_t, uint64_t>> floors_;
  std::vector<DedupEntry> dedup_;
  uint64_t deletes_events_before_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbBrokerStore>> RocksDbBrokerStore::Open(
    const std::string& dir, absl::Duration dedup_window) {
  Options options;
  options.dedup_window = dedup_window;
  return Open(dir, options);
}

absl::StatusOr<std::unique_ptr<RocksDbBrokerStore>> RocksDbBrokerStore::Open(
    const std::string& dir, const Options& options) {
  if (options.write_buffer_bytes < kMinWriteBufferBytes ||
      options.block_cache_bytes < kMinBlockCacheBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("broker store memory: write buffers need at least ", kMinWriteBufferBytes,
                     " bytes and the block cache ", kMinBlockCacheBytes, " (got ",
                     options.write_buffer_bytes, " and ", options.block_cache_bytes, ")"));
  }
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  // Two cores: keep background work small.
  db_options.max_background_jobs = 2;
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  db_options.keep_log_file_num = 2;

  // One bound for RocksDB's memory: memtables are charged to the block
  // cache, so blocks get what the memtables leave. Few shards: a shard
  // must hold the cache's 256 KiB memtable charges, and two cores see
  // little contention.
  auto cache = rocksdb::NewLRUCache(options.write_buffer_bytes + options.block_cache_bytes,
                                    /*num_shard_bits=*/2);
  if (options.after_background_work) {
    db_options.listeners.push_back(
        std::make_shared<BackgroundWorkListener>(options.after_background_work));
  }
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.write_buffer_bytes, cache);

  rocksdb::ColumnFamilyOptions base;
  // A small column family (dedup, queue, ...) flushes at half the budget
  // by itself (the manager flushes the oldest sooner when all together
  // pass 7/8 of it): one memtable written, one flushing.
  base.write_buffer_size = options.write_buffer_bytes / 2;
  base.max_write_buffer_number = 2;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Index and filter blocks live in the cache too (not beside it, growing
  // with the log).
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  // Newly flushed files' blocks stay pinned (still charged to the cache):
  // every dedup lookup checks each L0 file's filter, without a cache
  // lookup each time.
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Events are read by sequences that exist (a filter never saves a read)
  // and queues are only scanned: only the dedup lookups, most of which
  // miss, get a filter. Events are big and read in runs: bigger blocks,
  // a smaller index.
  rocksdb::BlockBasedTableOptions events_table = table;
  events_table.block_size = 16 << 10;
  rocksdb::BlockBasedTableOptions dedup_table = table;
  dedup_table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  base.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  auto store = std::unique_ptr<RocksDbBrokerStore>(new RocksDbBrokerStore());
  // Per store, not process-wide: each store keeps its own window.
  store->dedup_filter_ = std::make_unique<DedupExpiryFilter>(options.dedup_window);
  store->cache_ = cache;
  store->queue_filter_ = std::make_unique<QueueFloorFilter>(store->floors_);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (int i = 0; i < kCfCount; ++i) {
    rocksdb::ColumnFamilyOptions o = base;
    if (i == kEvents) {
      o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(events_table));
      // The log takes nine tenths of the bytes written. Its memtables
      // flush at a third of the budget, up to two flushing while a third
      // is written (writes stop only at three waiting, with no slowdown
      // before): half the memory of two memtables at half the budget, and
      // still one flush per ~4,000 events of 1 KiB at the default
      // (smaller ones queued behind the flush thread and slowed writes).
      // The log's keys only grow, so its files move down without rewrites.
      o.write_buffer_size = options.write_buffer_bytes / 3;
      o.max_write_buffer_number = 3;
    }
    if (i == kDedup) {
      // Written by brokers before the DedupIndex; read until it expires.
      o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(dedup_table));
      // Every publish looks its source+id up and nearly all miss: a bloom
      // filter over the memtable's keys (a tenth of its size) answers most
      // misses without searching the skip list.
      o.memtable_prefix_bloom_size_ratio = 0.1;
      o.memtable_whole_key_filtering = true;
      o.compaction_filter = store->dedup_filter_.get();
      o.periodic_compaction_seconds = 24 * 3600;
      // Compactions of dedup rewrite most of it (its keys are random) and
      // build each output file's bloom filter from every key's hash held in
      // memory: 8 MiB files bound that to about 1 MiB instead of 8 for a
      // million keys in one file.
      o.target_file_size_base = 8 << 20;
    }
    if (i == kQueue) o.compaction_filter = store->queue_filter_.get();
    cfs.emplace_back(kCfNames[i], o);
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, cfs, &store->handles_, &db);
  if (!s.ok()) return pettube::storage::FromRocksDb(s, absl::StrCat("open broker store ", dir));
  store->db_.reset(db);
  // Until the floors are loaded the filter sees none and keeps everything.
  std::unique_ptr<rocksdb::Iterator> it(
      store->db_->NewIterator(rocksdb::ReadOptions(), store->handles_[kMeta]));
  for (it->Seek(kAckFloorPrefix); it->Valid() && it->key().starts_with(kAckFloorPrefix);
       it->Next()) {
    const rocksdb::Slice key = it->key();
    if (key.size() != sizeof(kAckFloorPrefix) - 1 + 4 || it->value().size() != 8) continue;
    store->floors_.Set(absl::big_endian::Load32(key.data() + key.size() - 4),
                       absl::big_endian::Load64(it->value().data()));
  }
  auto status = pettube::storage::FromRocksDb(it->status(), "load ack floors");
  it.reset();
  if (!status.ok()) return status;
  if (status = store->OpenDedupIndex(dir, options); !status.ok()) return status;
  return store;
}

absl::Status RocksDbBrokerStore::OpenDedupIndex(const std::string& dir, const Options& options) {
  DedupIndex::Options index_options;
  index_options.dir = absl::StrCat(dir, "/dedup-runs");
  index_options.window = options.dedup_window;
  // Two segments at a time: one filling, one being written.
  index_options.segment_entries =
      std::clamp<size_t>(options.dedup_index_bytes / 2 / DedupIndex::kSegmentBytesPerEntry, 1024,
                         size_t{1} << 20);
  index_options.segment_key_bytes = std::max<size_t>(options.dedup_index_bytes / 4, 64 << 10);
  auto index = DedupIndex::Open(index_options);
  if (!index.ok()) return index.status();
  dedup_ = *std::move(index);
  fsync_ = options.sync;
  {
    std::unique_ptr<rocksdb::Iterator> legacy(
        db_->NewIterator(rocksdb::ReadOptions(), handles_[kDedup]));
    legacy->SeekToFirst();
    legacy_dedup_ = legacy->Valid();
    if (auto s = pettube::storage::FromRocksDb(legacy->status(), "read dedup"); !s.ok()) {
      return s;
    }
  }
  // The entries of events past the run files, rebuilt from the log (they
  // were in memory only): the events a restart finds are durable.
  const absl::Time not_before = absl::Now() - options.dedup_window;
  uint64_t last = dedup_->IndexedThrough();
  CloudEvent event;
  size_t added = 0;
  absl::Status persisted;
  auto replay = ScanEvents(last + 1, [&](const StoredEvent& e) {
    last = e.sequence;
    if (e.publish_time < not_before) return true;
    if (!e.Parse(&event)) return true;  // unreadable: nothing to deduplicate against
    dedup_->Add(DedupKey(event.source(), event.id()), e.sequence, e.publish_time);
    // A long log (a first start after an upgrade) is written to runs as it
    // is read, not held in memory whole.
    if (++added % index_options.segment_entries == 0) {
      dedup_->MarkDurable(e.sequence);
      persisted = dedup_->PersistDurable();
      if (!persisted.ok()) return false;
    }
    return true;
  });
  if (!replay.ok()) return replay;
  if (!persisted.ok()) return persisted;
  written_through_.store(last);
  dedup_->MarkDurable(last);
  return absl::OkStatus();
}

RocksDbBrokerStore::~RocksDbBrokerStore() {
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  if (db_ != nullptr) db_->Close();
}

std::unique_ptr<BrokerStore::Batch> RocksDbBrokerStore::NewBatch() {
  return std::make_unique<RocksDbBatch>(handles_);
}

absl::Status RocksDbBrokerStore::Write(Batch& batch, bool sync) {
  auto& b = static_cast<RocksDbBatch&>(batch);
  // The compaction filter must never see a floor above what is written: a
  // lowered floor takes effect before the write (whose re-queued entries
  // it would otherwise drop), a raised one after it.
  for (const auto& [sub, floor] : b.floors()) {
    if (floor < floors_.Get(sub)) floors_.Set(sub, floor);
  }
  // Dedup entries of events the log drops must be in run files first: a
  // restart rebuilds the others from the log.
  if (b.deletes_events_before() > dedup_->IndexedThrough() + 1) {
    if (auto s = dedup_->PersistDurable(); !s.ok()) return s;
  }
  rocksdb::WriteOptions options;
  // Synced: an ack promises the event survives a crash, not just a process
  // exit.
  options.sync = sync;
  const rocksdb::Status s = db_->Write(options, &b.batch());
  if (s.ok()) {
    for (const auto& [sub, floor] : b.floors()) floors_.Set(sub, floor);
    uint64_t last = 0;
    for (auto& e : b.dedup()) {
      last = std::max(last, e.sequence);
      dedup_->Add(e.key, e.sequence, e.publish_time);
    }
    b.dedup().clear();
    if (last > written_through_.load()) written_through_.store(last);
    // A synced write syncs every earlier one too.
    if (sync || !fsync_) dedup_->MarkDurable(written_through_.load());
  }
  return pettube::storage::FromRocksDb(s, "write");
}

absl::Status RocksDbBrokerStore::Sync() {
  // Covers every write finished before it starts.
  const uint64_t written = written_through_.load();
  // Syncs the log files without holding up writes: RocksDB syncs every WAL
  // file up to the current one (and the WAL directory after a new file).
  const rocksdb::Status s = db_->SyncWAL();
  if (s.ok()) dedup_->MarkDurable(written);
  return pettube::storage::FromRocksDb(s, "sync");
}

uint64_t RocksDbBrokerStore::AckFloor(uint32_t sub) { return floors_.Get(sub); }

uint64_t AckFloors::Get(uint32_t sub) const {
  absl::MutexLock lock(&mu_);
  auto it = floors_.find(sub);
  return it == floors_.end() ? 0 : it->second;
}

void AckFloors::Set(uint32_t sub, uint64_t floor) {
  absl::MutexLock lock(&mu_);
  if (floor == 0) {
    floors_.erase(sub);
  } else {
    floors_[sub] = floor;
  }
}

absl::StatusOr<std::optional<StoredEvent>> RocksDbBrokerStore::GetEvent(uint64_t sequence) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kEvents], SeqKey(sequence), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "read event");
  StoredEvent e;
  if (!DecodeEvent(sequence, value, &e)) {
    return absl::DataLossError(absl::StrCat("event ", sequence, ": unreadable record"));
  }
  return e;
}

absl::Status RocksDbBrokerStore::GetEvents(const std::vector<uint64_t>& sequences,
                                           std::vector<std::optional<StoredEvent>>* out) {
  const size_t n = sequences.size();
  out->clear();
  out->resize(n);
  if (n == 0) return absl::OkStatus();
  std::vector<std::string> keys;
  keys.reserve(n);
  for (uint64_t seq : sequences) keys.push_back(SeqKey(seq));
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(n);
  std::vector<rocksdb::Status> statuses(n);
  // One batched lookup: sorted keys share index and block reads.
  db_->MultiGet(rocksdb::ReadOptions(), handles_[kEvents], n, slices.data(), values.data(),
                statuses.data(),
                /*sorted_input=*/std::is_sorted(sequences.begin(), sequences.end()));
  for (size_t i = 0; i < n; ++i) {
    if (statuses[i].IsNotFound()) continue;
    if (!statuses[i].ok()) return pettube::storage::FromRocksDb(statuses[i], "read events");
    if (!DecodeEvent(sequences[i], values[i], &(*out)[i].emplace())) {
      return absl::DataLossError(absl::StrCat("event ", sequences[i], ": unreadable record"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<uint64_t>> RocksDbBrokerStore::LookupDedup(absl::string_view source,
                                                                        absl::string_view id,
                                                                        absl::Time not_before) {
  std::vector<std::optional<uint64_t>> found;
  if (auto s = LookupDedups({{source, id}}, not_before, &found); !s.ok()) return s;
  return found[0];
}

absl::Status RocksDbBrokerStore::LookupDedups(
    const std::vector<std::pair<absl::string_view, absl::string_view>>& source_ids,
    absl::Time not_before, std::vector<std::optional<uint64_t>>* out) {
  const size_t n = source_ids.size();
  out->assign(n, std::nullopt);
  if (n == 0) return absl::OkStatus();
  std::vector<std::string> keys;
  keys.reserve(n);
  for (const auto& [source, id] : source_ids) keys.push_back(DedupKey(source, id));
  if (auto s = dedup_->Lookup(keys, not_before, out); !s.ok()) return s;
  if (!legacy_dedup_) return absl::OkStatus();
  // Entries an older broker wrote to the dedup column family, until they
  // expire there.
  std::vector<size_t> missed;
  for (size_t i = 0; i < n; ++i) {
    if (!(*out)[i].has_value()) missed.push_back(i);
  }
  if (missed.empty()) return absl::OkStatus();
  std::vector<rocksdb::Slice> slices;
  for (size_t i : missed) slices.emplace_back(keys[i]);
  std::vector<rocksdb::PinnableSlice> values(missed.size());
  std::vector<rocksdb::Status> statuses(missed.size());
  db_->MultiGet(rocksdb::ReadOptions(), handles_[kDedup], missed.size(), slices.data(),
                values.data(), statuses.data());
  for (size_t k = 0; k < missed.size(); ++k) {
    if (statuses[k].IsNotFound()) continue;
    if (!statuses[k].ok()) return pettube::storage::FromRocksDb(statuses[k], "read dedup");
    (*out)[missed[k]] = DecodeDedup(values[k], not_before);
  }
  return absl::OkStatus();
}

absl::Status RocksDbBrokerStore::ScanEvents(uint64_t from,
                                            const std::function<bool(const StoredEvent&)>& visit) {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[kEvents]));
  for (it->Seek(SeqKey(from)); it->Valid(); it->Next()) {
    StoredEvent e;
    const uint64_t sequence = absl::big_endian::Load64(it->key().data());
    if (!DecodeEvent(sequence, it->value(), &e)) {
      return absl::DataLossError(absl::StrCat("event ", sequence, ": unreadable record"));
    }
    if (!visit(e)) break;
  }
  return pettube::storage::FromRocksDb(it->status(), "scan events");
}

absl::Status RocksDbBrokerStore::ScanQueue(uint32_t sub, uint64_t from, size_t max,
                                           std::vector<uint64_t>* out) {
  rocksdb::ReadOptions ro;
  const std::string upper = SubPrefix(sub + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[kQueue]));
  for (it->Seek(SubKey(sub, std::max(from, floors_.Get(sub)))); it->Valid() && out->size() < max;
       it->Next()) {
    out->push_back(SeqOfSubKey(it->key()));
  }
  return pettube::storage::FromRocksDb(it->status(), "scan queue");
}

absl::StatusOr<int64_t> RocksDbBrokerStore::CountQueue(uint32_t sub) {
  return CountFrom(kQueue, sub, floors_.Get(sub), "count queue");
}

absl::StatusOr<std::optional<StoredEvent>> RocksDbBrokerStore::GetOwedCopy(uint32_t sub,
                                                                           uint64_t sequence) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), handles_[kPending], SubKey(sub, sequence), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "read pending");
  storage::PendingRecord r;
  if (!r.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(absl::StrCat("pending record ", sequence, ": unreadable"));
  }
  if (r.event().empty()) return std::nullopt;
  StoredEvent e;
  e.sequence = sequence;
  e.publish_time = absl::FromUnixSeconds(r.publish_time().seconds()) +
                   absl::Nanoseconds(r.publish_time().nanos());
  e.wire = std::move(*r.mutable_event());
  return e;
}

absl::Status RocksDbBrokerStore::LoadPending(
    uint32_t sub, const std::function<void(uint64_t, const storage::PendingRecord&)>& visit) {
  rocksdb::ReadOptions ro;
  const std::string upper = SubPrefix(sub + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[kPending]));
  for (it->Seek(SubPrefix(sub)); it->Valid(); it->Next()) {
    storage::PendingRecord r;
    if (!r.ParseFromArray(it->value().data(), it->value().size())) continue;
    visit(SeqOfSubKey(it->key()), r);
  }
  return pettube::storage::FromRocksDb(it->status(), "load pending");
}

absl::Status RocksDbBrokerStore::ScanDeadLetters(uint32_t sub, uint64_t from, size_t max,
                                                 std::vector<v1::DeadLetter>* out) {
  rocksdb::ReadOptions ro;
  const std::string upper = SubPrefix(sub + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[kDead]));
  for (it->Seek(SubKey(sub, from)); it->Valid() && out->size() < max; it->Next()) {
    v1::DeadLetter d;
    if (!d.ParseFromArray(it->value().data(), it->value().size())) {
      return absl::DataLossError("dead letter: unreadable record");
    }
    out->push_back(std::move(d));
  }
  return pettube::storage::FromRocksDb(it->status(), "scan dead letters");
}

absl::StatusOr<int64_t> RocksDbBrokerStore::CountDeadLetters(uint32_t sub) {
  return CountFrom(kDead, sub, 0, "count dead letters");
}

absl::StatusOr<std::vector<storage::SubscriptionRecord>> RocksDbBrokerStore::LoadSubscriptions() {
  std::vector<storage::SubscriptionRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[kMeta]));
  for (it->Seek(kSubscriptionPrefix); it->Valid() && it->key().starts_with(kSubscriptionPrefix);
       it->Next()) {
    storage::SubscriptionRecord r;
    if (!r.ParseFromArray(it->value().data(), it->value().size())) {
      return absl::DataLossError(
          absl::StrCat("subscription ", it->key().ToString(), ": unreadable record"));
    }
    out.push_back(std::move(r));
  }
  if (auto s = pettube::storage::FromRocksDb(it->status(), "load subscriptions"); !s.ok()) return s;
  return out;
}

absl::StatusOr<uint64_t> RocksDbBrokerStore::LastSequence() {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kMeta], kLastSequenceKey, &v);
  if (s.IsNotFound()) return 0;
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "read last sequence");
  if (v.size() != 8) {
    return absl::DataLossError(
        absl::StrCat("last sequence: unreadable record of ", v.size(), " bytes (want 8)"));
  }
  return absl::big_endian::Load64(v.data());
}

absl::StatusOr<uint32_t> RocksDbBrokerStore::NextSubscriptionId() {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[kMeta], kNextSubscriptionIdKey, &v);
  if (s.IsNotFound()) return 1;
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "read next subscription id");
  if (v.size() != 4) {
    return absl::DataLossError(
        absl::StrCat("next subscription id: unreadable record of ", v.size(), " bytes (want 4)"));
  }
  return absl::big_endian::Load32(v.data());
}

absl::StatusOr<uint64_t> RocksDbBrokerStore::FirstSequence() {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[kEvents]));
  it->SeekToFirst();
  if (!it->Valid()) {
    if (auto s = pettube::storage::FromRocksDb(it->status(), "first sequence"); !s.ok()) return s;
    return 0;
  }
  return absl::big_endian::Load64(it->key().data());
}

absl::StatusOr<int64_t> RocksDbBrokerStore::ApproximateEventBytes() {
  const std::string lo = SeqKey(0);
  const std::string hi = SeqKey(~uint64_t{0});
  rocksdb::Range range(lo, hi);
  uint64_t size = 0;
  rocksdb::SizeApproximationOptions options;
  options.include_memtables = true;
  options.include_files = true;
  rocksdb::Status s = db_->GetApproximateSizes(options, handles_[kEvents], &range, 1, &size);
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "approximate size");
  return static_cast<int64_t>(size);
}

absl::Status RocksDbBrokerStore::CompactQueue() {
  rocksdb::CompactRangeOptions options;
  // Rewrite the bottom level too, so the filter sees every entry.
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return pettube::storage::FromRocksDb(
      db_->CompactRange(options, handles_[kQueue], nullptr, nullptr), "compact queue");
}

absl::StatusOr<int64_t> RocksDbBrokerStore::CountStoredQueueEntries(uint32_t sub) {
  return CountFrom(kQueue, sub, 0, "count queue");
}

RocksDbBrokerStore::MemoryUsage RocksDbBrokerStore::GetMemoryUsage() {
  MemoryUsage usage;
  uint64_t v = 0;
  if (db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kSizeAllMemTables, &v)) {
    usage.memtables = static_cast<int64_t>(v);
  }
  if (db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kEstimateTableReadersMem, &v)) {
    usage.table_readers = static_cast<int64_t>(v);
  }
  usage.block_cache = static_cast<int64_t>(cache_->GetUsage());
  usage.dedup_index = static_cast<int64_t>(dedup_->MemoryBytes());
  return usage;
}

absl::StatusOr<int64_t> RocksDbBrokerStore::CountFrom(size_t column_family, uint32_t sub,
                                                      uint64_t from, absl::string_view what) {
  rocksdb::ReadOptions ro;
  const std::string upper = SubPrefix(sub + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, handles_[column_family]));
  int64_t n = 0;
  for (it->Seek(SubKey(sub, from)); it->Valid(); it->Next()) ++n;
  if (auto s = pettube::storage::FromRocksDb(it->status(), what); !s.ok()) return s;
  return n;
}

}  // namespace pettube::broker
