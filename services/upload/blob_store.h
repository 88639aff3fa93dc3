#pragma once

// Where object bytes live. The upload service keeps each object's metadata
// (size, SHA-256, type) in its own RocksDB; a BlobStore only stores bytes,
// so another backend needs only these few operations. An S3-compatible
// backend maps them one to one: a staged writer is a multipart upload
// (parts of at least 5 MiB, its upload id kept as `staging_id`'s state),
// CommitStaged is CompleteMultipartUpload (atomic: the object appears
// whole or not at all), OpenRange is a ranged GET, Delete and List are
// DeleteObject and ListObjectsV2 with a prefix.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pettube::upload {

// Appends bytes to a staged, not yet visible object. Not thread-safe: one
// writer per upload at a time.
class StagedWriter {
 public:
  virtual ~StagedWriter() = default;
  // Appends at the end. The bytes are durable only after Sync().
  virtual absl::Status Append(absl::string_view data) = 0;
  // Makes every byte appended so far durable (survives a crash).
  virtual absl::Status Sync() = 0;
};

// Reads a byte range of a committed object. Thread-compatible.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  virtual int64_t size() const = 0;
  // Up to `max` bytes at `offset` into `out` (replaced); fewer only at the
  // end of the object.
  virtual absl::Status ReadAt(int64_t offset, size_t max, std::string* out) = 0;
};

// Thread-safe. Buckets and keys are validated by the caller
// (object_keys.h); implementations still refuse anything that would leave
// their root.
class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // A writer appending to staging `staging_id` after its first `offset`
  // bytes: 0 starts it anew; a resume drops whatever was appended past
  // `offset` and not recorded (a crash can leave such bytes).
  // FAILED_PRECONDITION when fewer than `offset` bytes are staged.
  virtual absl::StatusOr<std::unique_ptr<StagedWriter>> OpenStaged(absl::string_view staging_id,
                                                                   int64_t offset) = 0;
  // Makes the staged bytes the object `bucket`/`key`, atomically and
  // durably, replacing any previous one. NOT_FOUND when nothing is staged
  // under the id but the object exists (an earlier commit already moved
  // it), so callers can finish a commit a crash interrupted.
  virtual absl::Status CommitStaged(absl::string_view staging_id, absl::string_view bucket,
                                    absl::string_view key) = 0;
  // Drops a staging; OK if there is none.
  virtual absl::Status DiscardStaged(absl::string_view staging_id) = 0;
  // Ids of every staging present (S3: ListMultipartUploads), so a restart
  // can finish or sweep what a crash left.
  virtual absl::StatusOr<std::vector<std::string>> ListStaged() = 0;

  // NOT_FOUND when there is no such object.
  virtual absl::StatusOr<std::unique_ptr<BlobReader>> Open(absl::string_view bucket,
                                                           absl::string_view key) = 0;
  // True if the object exists.
  virtual absl::StatusOr<bool> Exists(absl::string_view bucket, absl::string_view key) = 0;
  // Removes an object; OK if it does not exist.
  virtual absl::Status Delete(absl::string_view bucket, absl::string_view key) = 0;
  // Keys under `prefix` in `bucket`, sorted.
  virtual absl::StatusOr<std::vector<std::string>> List(absl::string_view bucket,
                                                        absl::string_view prefix) = 0;
};

}  // namespace pettube::upload
