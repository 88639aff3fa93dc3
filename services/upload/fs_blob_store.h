#pragma once

#include <memory>
#include <string>
#include <vector>

#include "services/upload/blob_store.h"

namespace pettube::upload {

// BlobStore on a local filesystem (the default; on Kubernetes a
// ReadWriteOnce volume of the upload pod: nobody else mounts it).
//
//   {root}/.staging/{staging_id}     bytes of uploads in progress
//   {root}/{bucket}/{key}            committed objects
//
// A commit fsyncs the staged file, renames it into place and fsyncs the
// directory, so a reader never sees a partial object and a committed one
// survives a crash. Thread-safe.
class FsBlobStore : public BlobStore {
 public:
  // Creates the directories if missing. INTERNAL with the OS's reason when
  // they cannot be made.
  static absl::StatusOr<std::unique_ptr<FsBlobStore>> Open(const std::string& root);

  absl::StatusOr<std::unique_ptr<StagedWriter>> OpenStaged(absl::string_view staging_id,
                                                           int64_t offset) override;
  absl::Status CommitStaged(absl::string_view staging_id, absl::string_view bucket,
                            absl::string_view key) override;
  absl::Status DiscardStaged(absl::string_view staging_id) override;
  absl::StatusOr<std::unique_ptr<BlobReader>> Open(absl::string_view bucket,
                                                   absl::string_view key) override;
  absl::StatusOr<bool> Exists(absl::string_view bucket, absl::string_view key) override;
  absl::Status Delete(absl::string_view bucket, absl::string_view key) override;
  absl::StatusOr<std::vector<std::string>> List(absl::string_view bucket,
                                                absl::string_view prefix) override;

  absl::StatusOr<std::vector<std::string>> ListStaged() override;

 private:
  explicit FsBlobStore(std::string root) : root_(std::move(root)) {}
  // The object's path; INVALID_ARGUMENT for a bucket or key that is not
  // valid (and so might leave the root).
  absl::StatusOr<std::string> ObjectPath(absl::string_view bucket, absl::string_view key) const;
  absl::StatusOr<std::string> StagingPath(absl::string_view staging_id) const;

  const std::string root_;
};

}  // namespace pettube::upload
