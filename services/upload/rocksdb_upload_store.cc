#include "services/upload/rocksdb_upload_store.h"

#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "libs/storage/rocksdb_status.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/write_batch.h"

namespace pettube::upload {
namespace {

using internal::ObjectRecord;
using internal::UploadRecord;
using storage::FromRocksDb;

std::string EncodeInt64(int64_t v) {
  std::string out(sizeof(v), '\0');
  std::memcpy(out.data(), &v, sizeof(v));
  return out;
}

// Unreadable values count as 0: usage is advisory bookkeeping, and a
// corrupt counter must not stop uploads or abort the process.
int64_t DecodeInt64(const rocksdb::Slice& s) {
  int64_t v = 0;
  if (s.size() == sizeof(v)) std::memcpy(&v, s.data(), sizeof(v));
  return v;
}

// Adds int64 deltas, so usage updates need no read-modify-write.
class Int64AddOperator : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    const int64_t base = existing == nullptr ? 0 : DecodeInt64(*existing);
    *new_value = EncodeInt64(base + DecodeInt64(value));
    return true;
  }
  const char* Name() const override { return "pettube.Int64Add"; }
};

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

std::string ObjectKey(absl::string_view bucket, absl::string_view key) {
  return absl::StrCat(bucket, "/", key);
}

template <typename Proto>
absl::StatusOr<Proto> Parse(const std::string& bytes, absl::string_view what) {
  Proto p;
  if (!p.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(what, ": stored record does not parse"));
  }
  return p;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbUploadStore>> RocksDbUploadStore::Open(
    const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("upload store ", dir, ": ", ec.message()));
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.max_background_jobs = 1;
  options.info_log_level = rocksdb::WARN_LEVEL;
  options.keep_log_file_num = 2;
  rocksdb::ColumnFamilyOptions plain;
  rocksdb::ColumnFamilyOptions usage = plain;
  usage.merge_operator = std::make_shared<Int64AddOperator>();
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, plain},
      {"uploads", plain},
      {"objects", plain},
      {"outbox", plain},
      {"usage", usage},
      {"deleted", plain},
      {"active", plain},
  };
  auto store = std::unique_ptr<RocksDbUploadStore>(new RocksDbUploadStore());
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, families, &store->handles_, &db);
  if (!s.ok()) return FromRocksDb(s, absl::StrCat("open upload store ", dir));
  store->db_.reset(db);
  store->uploads_ = store->handles_[1];
  store->objects_ = store->handles_[2];
  store->outbox_ = store->handles_[3];
  store->usage_ = store->handles_[4];
  store->deleted_ = store->handles_[5];
  store->active_ = store->handles_[6];
  return store;
}

RocksDbUploadStore::~RocksDbUploadStore() {
  if (db_ == nullptr) return;
  for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
  db_->Close();
}

absl::Status RocksDbUploadStore::Write(rocksdb::WriteBatch& batch) {
  rocksdb::WriteOptions options;
  // Synced: a client hears "stored" only after this returns.
  options.sync = true;
  return FromRocksDb(db_->Write(options, &batch), "upload store write");
}

absl::StatusOr<std::optional<UploadRecord>> RocksDbUploadStore::GetUpload(
    absl::string_view upload_id) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), uploads_, ToSlice(upload_id), &value);
  if (s.IsNotFound()) return std::optional<UploadRecord>();
  if (!s.ok()) return FromRocksDb(s, "read upload");
  auto record = Parse<UploadRecord>(value, absl::StrCat("upload ", upload_id));
  if (!record.ok()) return record.status();
  return std::optional<UploadRecord>(*std::move(record));
}

absl::StatusOr<std::vector<UploadRecord>> RocksDbUploadStore::ListActiveUploads() {
  std::vector<UploadRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), active_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto record = GetUpload(absl::string_view(it->key().data(), it->key().size()));
    // A record that is missing or does not parse is skipped, not fatal:
    // every other upload keeps working.
    if (!record.ok() || !record->has_value()) continue;
    if ((*record)->session().state() == v1::ACTIVE) out.push_back(**std::move(record));
  }
  if (!it->status().ok()) return FromRocksDb(it->status(), "list uploads");
  return out;
}

absl::Status RocksDbUploadStore::PutUpload(const UploadRecord& upload, int64_t usage_delta) {
  rocksdb::WriteBatch batch;
  const std::string id = upload.session().name().substr(sizeof("uploads/") - 1);
  batch.Put(uploads_, id, upload.SerializeAsString());
  if (upload.session().state() == v1::ACTIVE) {
    batch.Put(active_, id, "");
  } else {
    batch.Delete(active_, id);
  }
  if (usage_delta != 0 && !upload.owner().empty() &&
      upload.session().bucket() == "originals") {
    batch.Merge(usage_, upload.owner(), EncodeInt64(usage_delta));
  }
  return Write(batch);
}

absl::Status RocksDbUploadStore::CommitUpload(const UploadRecord& upload,
                                              const ObjectRecord& object,
                                              const io::cloudevents::v1::CloudEvent* event) {
  rocksdb::WriteBatch batch;
  const std::string id = upload.session().name().substr(sizeof("uploads/") - 1);
  batch.Put(uploads_, id, upload.SerializeAsString());
  batch.Delete(active_, id);
  batch.Put(objects_, ObjectKey(object.info().bucket(), object.info().key()),
            object.SerializeAsString());
  if (event != nullptr) batch.Put(outbox_, id, event->SerializeAsString());
  return Write(batch);
}

absl::StatusOr<std::vector<OutboxEntry>> RocksDbUploadStore::ListOutbox() {
  std::vector<OutboxEntry> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), outbox_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    OutboxEntry e;
    e.upload_id = it->key().ToString();
    if (!e.event.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      continue;  // see ListActiveUploads
    }
    out.push_back(std::move(e));
  }
  if (!it->status().ok()) return FromRocksDb(it->status(), "list outbox");
  return out;
}

absl::Status RocksDbUploadStore::MarkPublished(absl::string_view upload_id) {
  auto upload = GetUpload(upload_id);
  if (!upload.ok()) return upload.status();
  rocksdb::WriteBatch batch;
  batch.Delete(outbox_, ToSlice(upload_id));
  if (upload->has_value()) {
    (*upload)->mutable_session()->set_event_published(true);
    batch.Put(uploads_, ToSlice(upload_id), (*upload)->SerializeAsString());
  }
  return Write(batch);
}

absl::StatusOr<std::optional<ObjectRecord>> RocksDbUploadStore::GetObject(
    absl::string_view bucket, absl::string_view key) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), objects_, ObjectKey(bucket, key), &value);
  if (s.IsNotFound()) return std::optional<ObjectRecord>();
  if (!s.ok()) return FromRocksDb(s, "read object");
  auto record = Parse<ObjectRecord>(value, ObjectKey(bucket, key));
  if (!record.ok()) return record.status();
  return std::optional<ObjectRecord>(*std::move(record));
}

absl::StatusOr<std::vector<ObjectRecord>> RocksDbUploadStore::ListObjects(
    absl::string_view bucket, absl::string_view prefix) {
  const std::string start = ObjectKey(bucket, prefix);
  std::vector<ObjectRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), objects_));
  for (it->Seek(start); it->Valid() && it->key().starts_with(start); it->Next()) {
    ObjectRecord r;
    if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      // Keep the key, so a deletion still removes the bytes.
      const std::string full = it->key().ToString();
      r.mutable_info()->set_bucket(std::string(bucket));
      r.mutable_info()->set_key(full.substr(bucket.size() + 1));
    }
    out.push_back(std::move(r));
  }
  if (!it->status().ok()) return FromRocksDb(it->status(), "list objects");
  return out;
}

absl::Status RocksDbUploadStore::DeleteObjects(const std::vector<ObjectRecord>& objects,
                                               absl::string_view media_id) {
  rocksdb::WriteBatch batch;
  for (const ObjectRecord& o : objects) {
    batch.Delete(objects_, ObjectKey(o.info().bucket(), o.info().key()));
    if (!o.quota_owner().empty()) {
      batch.Merge(usage_, o.quota_owner(), EncodeInt64(-o.info().size_bytes()));
    }
  }
  if (!media_id.empty()) batch.Put(deleted_, ToSlice(media_id), "");
  return Write(batch);
}

absl::StatusOr<bool> RocksDbUploadStore::IsMediaDeleted(absl::string_view media_id) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), deleted_, ToSlice(media_id), &value);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return FromRocksDb(s, "read deleted media");
  return true;
}

absl::StatusOr<int64_t> RocksDbUploadStore::Usage(absl::string_view owner) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), usage_, ToSlice(owner), &value);
  if (s.IsNotFound()) return int64_t{0};
  if (!s.ok()) return FromRocksDb(s, "read usage");
  return DecodeInt64(value);
}

}  // namespace pettube::upload
