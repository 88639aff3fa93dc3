#pragma once

// The rules of resumable uploads, without gRPC: sessions, the single
// writer per upload, offsets, size and quota limits, the container check,
// hashing as bytes stream in, the atomic commit with its outbox event,
// expiry of stale sessions, and deletion of a media item's objects.

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/credentials/authenticator.h"
#include "proto/pettube/upload/v1/upload.pb.h"
#include "services/upload/blob_store.h"
#include "services/upload/sha256_state.h"
#include "services/upload/upload_probe.h"
#include "services/upload/upload_store.h"

namespace pettube::upload {

// Scopes the upload service checks.
inline constexpr absl::string_view kUploadScope = "media.upload";
inline constexpr absl::string_view kObjectsWriteScope = "objects.write";
inline constexpr absl::string_view kObjectsReadScope = "objects.read";

// Largest chunk one WriteRequest may carry.
inline constexpr size_t kMaxChunkBytes = size_t{4} << 20;

class UploadWriter;

// Thread-safe. Owns the expiry thread; shares the stores.
class Uploads {
 public:
  struct Options {
    // Largest object accepted, in either bucket.
    int64_t max_object_bytes = int64_t{64} << 30;
    // Bytes each person may hold in originals (committed plus staged).
    int64_t quota_bytes = int64_t{100} << 30;
    // An ACTIVE session not written to for this long is aborted and its
    // bytes removed.
    absl::Duration upload_ttl = absl::Hours(24);
    // A Write stream makes its bytes durable and records its offset at
    // least this often (and when it ends): what a crash can cost a client.
    int64_t checkpoint_bytes = int64_t{8} << 20;
    // How long a new Write stream waits for the stream before it to let go
    // of the upload (a client reconnecting after a drop usually races the
    // server noticing the drop) before it is refused with ABORTED.
    absl::Duration writer_handoff_wait = absl::Seconds(1);
    // Runs the timer that expires sessions (tests drive ExpireDue instead).
    bool run_expiry_timer = true;
    std::function<absl::Time()> now = [] { return absl::Now(); };
    // Metrics; may be null.
    UploadProbe* probe = nullptr;
    // Called after a session expired (tests).
    std::function<void(const std::string& upload_id)> on_expired;
  };

  // Receives each committed original's pettube.media.uploaded event once
  // it is recorded in the outbox (and again at Recover for every entry
  // still there). Must not block.
  using CommitListener = std::function<void(const OutboxEntry&)>;

  Uploads(UploadStore* store, BlobStore* blobs, Options options, CommitListener on_commit);
  ~Uploads();

  Uploads(const Uploads&) = delete;
  Uploads& operator=(const Uploads&) = delete;

  // At start, before serving: finishes commits a crash interrupted, drops
  // staged bytes no active session owns, schedules every active session's
  // expiry, and hands every outbox entry to the listener.
  absl::Status Recover() ABSL_LOCKS_EXCLUDED(mu_);

  // CreateUpload. INVALID_ARGUMENT (title, content type, sizes, checksum,
  // bucket, key), PERMISSION_DENIED (scope), RESOURCE_EXHAUSTED (declared
  // size over the limit or the quota), FAILED_PRECONDITION (renditions for
  // a media that does not exist or was deleted).
  absl::StatusOr<v1::UploadSession> Create(const auth::Caller& caller,
                                           const v1::CreateUploadRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);

  // QueryUpload: NOT_FOUND for unknown names and other callers' uploads.
  absl::StatusOr<v1::UploadSession> Query(const auth::Caller& caller, absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);

  // AbortUpload: the session becomes ABORTED and its bytes are removed.
  // FAILED_PRECONDITION once committed; ABORTED while a Write is open.
  // Aborting an aborted upload is OK.
  absl::Status Abort(const auth::Caller& caller, absl::string_view name) ABSL_LOCKS_EXCLUDED(mu_);

  // Claims the upload for one Write stream. ABORTED if another stream
  // still holds it after Options::writer_handoff_wait; FAILED_PRECONDITION if it is committed or aborted; NOT_FOUND as
  // Query.
  absl::StatusOr<std::unique_ptr<UploadWriter>> BeginWrite(const auth::Caller& caller,
                                                           absl::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);

  // StatObject: objects.read, or the owner of the media the key is under.
  absl::StatusOr<v1::ObjectInfo> Stat(const auth::Caller& caller, absl::string_view bucket,
                                      absl::string_view key);

  // A committed object's record; NOT_FOUND when absent. For the object
  // server, which has already authorized the request.
  absl::StatusOr<internal::ObjectRecord> FindObject(absl::string_view bucket,
                                                    absl::string_view key);

  // Removes every object of media "media/{id}" owned by `owner`, in both
  // buckets, and refuses renditions for it from now on. Idempotent.
  absl::Status DeleteMedia(absl::string_view owner, absl::string_view media_name);

  // Expires every session due at options.now() (the timer calls this).
  void ExpireDue() ABSL_LOCKS_EXCLUDED(mu_);

  BlobStore* blobs() const { return blobs_; }

 private:
  friend class UploadWriter;

  // The caller's record for `name`, checked for ownership.
  absl::StatusOr<internal::UploadRecord> LoadOwned(const auth::Caller& caller,
                                                   absl::string_view name);
  void ScheduleExpiry(const std::string& upload_id, absl::Time at) ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseWriter(const std::string& upload_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Marks an ACTIVE session ABORTED, frees its quota and drops its bytes.
  absl::Status AbortRecord(internal::UploadRecord record);
  void RunExpiryTimer() ABSL_LOCKS_EXCLUDED(mu_);

  UploadStore* const store_;
  BlobStore* const blobs_;
  const Options options_;
  const CommitListener on_commit_;

  absl::Mutex mu_;
  // Uploads with an open Write stream.
  absl::flat_hash_set<std::string> writing_ ABSL_GUARDED_BY(mu_);
  // Expiry deadlines, also ordered by time: the timer sleeps until the
  // earliest (or until an earlier one is scheduled), never on a tick.
  absl::flat_hash_map<std::string, absl::Time> expire_at_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, std::string>> expiry_queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;
};

// One Write stream's hold on an upload: appends chunks, hashing them as
// they come, checkpoints (sync + record the offset and hash state) every
// Options::checkpoint_bytes and when destroyed, and commits on the chunk
// that finishes the file. Not thread-safe: one stream, one thread.
class UploadWriter {
 public:
  ~UploadWriter();

  // Takes one chunk. INVALID_ARGUMENT (negative offset, chunk over 4 MiB,
  // not a video, missing checksum), OUT_OF_RANGE (offset not the current
  // size, past the declared size), RESOURCE_EXHAUSTED (object limit,
  // quota), DATA_LOSS (size or SHA-256 mismatch at finish: the upload is
  // aborted), FAILED_PRECONDITION (written after the commit). After an
  // error the stream should end; what was checkpointed stays.
  absl::Status Write(const v1::WriteRequest& request);

  // Makes everything written durable and records it.
  absl::Status Checkpoint();

  // Bytes durably recorded (where a client resumes).
  int64_t committed_size() const { return record_.session().committed_size(); }
  // Set once a finishing chunk committed the upload.
  const v1::CommittedMedia* committed() const {
    return record_.session().has_committed() ? &record_.session().committed() : nullptr;
  }

 private:
  friend class Uploads;
  UploadWriter(Uploads* uploads, internal::UploadRecord record, Sha256State hash,
               std::unique_ptr<StagedWriter> staged)
      : uploads_(uploads),
        record_(std::move(record)),
        hash_(std::move(hash)),
        staged_(std::move(staged)),
        position_(record_.session().committed_size()) {}

  absl::Status CheckChunk(const v1::WriteRequest& request);
  absl::Status Finish(const v1::WriteRequest& request);
  const std::string& id() const { return id_; }

  Uploads* const uploads_;
  internal::UploadRecord record_;
  Sha256State hash_;
  std::unique_ptr<StagedWriter> staged_;
  // Bytes appended by this stream so far (>= committed_size()).
  int64_t position_;
  std::string id_;
  // The upload ended (committed or aborted): nothing more to checkpoint.
  bool done_ = false;
};

}  // namespace pettube::upload
