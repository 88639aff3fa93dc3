#pragma once

// What the upload service records durably: upload sessions, committed
// objects' metadata, each identity's bytes used, the outbox of events not
// yet acknowledged by the broker, and deleted media.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "services/upload/upload_record.pb.h"

namespace pettube::upload {

// An event waiting in the outbox, with the upload that produced it.
struct OutboxEntry {
  std::string upload_id;
  io::cloudevents::v1::CloudEvent event;
};

// Every write is synced before it returns: callers acknowledge clients
// after it. Thread-safe.
class UploadStore {
 public:
  virtual ~UploadStore() = default;

  // nullopt when unknown.
  virtual absl::StatusOr<std::optional<internal::UploadRecord>> GetUpload(
      absl::string_view upload_id) = 0;
  // Every session not finished: ACTIVE ones (to expire or resume).
  virtual absl::StatusOr<std::vector<internal::UploadRecord>> ListActiveUploads() = 0;

  // Creates or updates a session, adding `usage_delta` bytes to its owner's
  // usage (staged bytes count against the quota). One write.
  virtual absl::Status PutUpload(const internal::UploadRecord& upload, int64_t usage_delta) = 0;

  // The commit: the session (now COMMITTED), the object's metadata and,
  // for originals, the pettube.media.uploaded event in the outbox, in one
  // write.
  virtual absl::Status CommitUpload(const internal::UploadRecord& upload,
                                    const internal::ObjectRecord& object,
                                    const io::cloudevents::v1::CloudEvent* event) = 0;

  // Outbox entries, oldest first.
  virtual absl::StatusOr<std::vector<OutboxEntry>> ListOutbox() = 0;
  // The broker acknowledged the event of `upload_id`: drop it from the
  // outbox and mark the session's event published, in one write.
  virtual absl::Status MarkPublished(absl::string_view upload_id) = 0;

  // Metadata of a committed object; nullopt when absent.
  virtual absl::StatusOr<std::optional<internal::ObjectRecord>> GetObject(
      absl::string_view bucket, absl::string_view key) = 0;
  virtual absl::StatusOr<std::vector<internal::ObjectRecord>> ListObjects(
      absl::string_view bucket, absl::string_view prefix) = 0;
  // Forgets these objects (their quota owners' usage goes down by their
  // sizes) and records `media_id` as deleted, in one write.
  virtual absl::Status DeleteObjects(const std::vector<internal::ObjectRecord>& objects,
                                     absl::string_view media_id) = 0;
  virtual absl::StatusOr<bool> IsMediaDeleted(absl::string_view media_id) = 0;

  // Bytes counted against `owner`'s quota: committed originals plus bytes
  // staged by active uploads.
  virtual absl::StatusOr<int64_t> Usage(absl::string_view owner) = 0;
};

}  // namespace pettube::upload
