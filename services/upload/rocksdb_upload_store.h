#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rocksdb/db.h"
#include "services/upload/upload_store.h"

namespace pettube::upload {

// UploadStore in RocksDB, a column family per record kind:
//   uploads   upload id -> UploadRecord
//   objects   "{bucket}/{key}" -> ObjectRecord
//   outbox    upload id -> CloudEvent of a commit the broker has not acked
//   usage     owner -> int64 bytes (merge-added, so concurrent uploads of
//             one owner never lose an update)
//   deleted   media id -> "" (renditions for it are refused)
//   active    upload id -> "" for ACTIVE sessions, so a start reads only
//             those, however many finished uploads the service has seen
class RocksDbUploadStore : public UploadStore {
 public:
  static absl::StatusOr<std::unique_ptr<RocksDbUploadStore>> Open(const std::string& dir);
  ~RocksDbUploadStore() override;

  absl::StatusOr<std::optional<internal::UploadRecord>> GetUpload(
      absl::string_view upload_id) override;
  absl::StatusOr<std::vector<internal::UploadRecord>> ListActiveUploads() override;
  absl::Status PutUpload(const internal::UploadRecord& upload, int64_t usage_delta) override;
  absl::Status CommitUpload(const internal::UploadRecord& upload,
                            const internal::ObjectRecord& object,
                            const io::cloudevents::v1::CloudEvent* event) override;
  absl::StatusOr<std::vector<OutboxEntry>> ListOutbox() override;
  absl::Status MarkPublished(absl::string_view upload_id) override;
  absl::StatusOr<std::optional<internal::ObjectRecord>> GetObject(absl::string_view bucket,
                                                                  absl::string_view key) override;
  absl::StatusOr<std::vector<internal::ObjectRecord>> ListObjects(
      absl::string_view bucket, absl::string_view prefix) override;
  absl::Status DeleteObjects(const std::vector<internal::ObjectRecord>& objects,
                             absl::string_view media_id) override;
  absl::StatusOr<bool> IsMediaDeleted(absl::string_view media_id) override;
  absl::StatusOr<int64_t> Usage(absl::string_view owner) override;

 private:
  RocksDbUploadStore() = default;
  absl::Status Write(rocksdb::WriteBatch& batch);

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned by db_ until Close
  rocksdb::ColumnFamilyHandle* uploads_ = nullptr;
  rocksdb::ColumnFamilyHandle* objects_ = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_ = nullptr;
  rocksdb::ColumnFamilyHandle* usage_ = nullptr;
  rocksdb::ColumnFamilyHandle* deleted_ = nullptr;
  rocksdb::ColumnFamilyHandle* active_ = nullptr;
};

}  // namespace pettube::upload
