#pragma once

// Storage of media records: the interface the catalog core uses, with a
// RocksDB implementation (rocksdb_media_store.h) and an in-memory fake for
// tests (in_memory_media_store.h).

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "services/media-catalog/catalog_storage.pb.h"

namespace pettube::catalog {

using StoredMedia = pettube::catalog::storage::StoredMedia;

// Which ordered index a scan walks.
enum class MediaIndex {
  // One owner's listed media, newest first.
  kOwner,
  // PUBLIC media of everyone, newest first.
  kPublic,
  // Every listed media item, by media id.
  kAll,
};

struct ScanRequest {
  MediaIndex index = MediaIndex::kOwner;
  // kOwner only.
  std::string owner;
  // Index key of the last item already returned ("" from the start); the
  // scan begins strictly after it.
  std::string after;
  // Items to return at most.
  int limit = 50;
  // Index entries to look at at most (a filter may reject many).
  int max_scan = 5000;
  // Keeps an item when true; unset keeps all.
  std::function<bool(const StoredMedia&)> filter;
};

struct ScanResult {
  std::vector<StoredMedia> media;
  // Index key of the last entry looked at: the next scan's `after`.
  std::string last_key;
  // True when the index has no entries after `last_key`.
  bool end = false;
};

// Media records plus their indexes and the ids of applied events. A record
// is listed (in the owner index, and in the public index when PUBLIC) when
// it is `uploaded` and not `deleted`.
//
// Thread-safe. Implementations write each change as one atomic unit
// (record, index entries, applied event id).
class MediaStore {
 public:
  virtual ~MediaStore() = default;

  // Reads the record into `out` (which may live on an arena: the read
  // path parses into one). NOT_FOUND when no record (not even a tombstone)
  // exists; `out` is then unspecified.
  virtual absl::Status Read(absl::string_view media_id, StoredMedia* out) = 0;
  // Read without waiting for the disk: true (and `out` filled) when the
  // record could be read from memory alone, false when reading it needs
  // I/O (call Read, off a request thread), NOT_FOUND as Read. By default
  // every read may need I/O.
  virtual absl::StatusOr<bool> ReadFromMemory(absl::string_view media_id, StoredMedia* out) {
    return false;
  }
  // Read into a new record.
  absl::StatusOr<StoredMedia> Get(absl::string_view media_id);

  // Whether the event with this key (see EventKey) was applied.
  virtual absl::StatusOr<bool> IsApplied(absl::string_view event_key) = 0;

  // Replaces the record `record.media_id()` and its index entries, and (when
  // `event_key` is not empty) marks that event applied, atomically.
  // `record.version()` must be `expected_version + 1`; the stored version
  // must be `expected_version` (0: no record yet), else ABORTED. ALREADY_EXISTS
  // when `event_key` was applied already (nothing is written).
  // With `outbox`, that event is stored in the outbox in the same atomic
  // unit (UpdateMedia: the change and the event announcing it commit
  // together, and the event is published from the outbox).
  virtual absl::Status Write(const StoredMedia& record, uint64_t expected_version,
                             absl::string_view event_key,
                             const io::cloudevents::v1::CloudEvent* outbox) = 0;
  absl::Status Write(const StoredMedia& record, uint64_t expected_version,
                     absl::string_view event_key) {
    return Write(record, expected_version, event_key, nullptr);
  }
  // The outbox: events written with a record and not yet removed.
  virtual absl::StatusOr<std::vector<io::cloudevents::v1::CloudEvent>> Outbox() = 0;
  // Removes the outbox event with this id, once the broker stored it. Need
  // not be synced: an event removed but forgotten in a crash is published
  // again, and the broker drops it as a duplicate.
  virtual absl::Status RemoveFromOutbox(absl::string_view event_id) = 0;

  // Marks an event applied that changes no record (e.g. a late event for a
  // deleted item is still remembered). ALREADY_EXISTS when it was.
  virtual absl::Status MarkApplied(absl::string_view media_id, absl::string_view event_key) = 0;

  // Walks an index. INVALID_ARGUMENT for a malformed request.
  virtual absl::StatusOr<ScanResult> Scan(const ScanRequest& request) = 0;

  // Consistent online copy into `dir` (must not exist), e.g. a RocksDB
  // checkpoint. UNIMPLEMENTED where not supported.
  virtual absl::Status Checkpoint(const std::string& dir) = 0;

  // A stored secret of 32 random bytes, created on first use and kept
  // across restarts (signs page tokens).
  virtual absl::StatusOr<std::string> Secret() = 0;

  // True when no record and no applied event is stored (rebuild check).
  virtual absl::StatusOr<bool> IsEmpty() = 0;
};

// The applied-events key of an event: its source and id, as the broker
// dedups them.
std::string EventKey(absl::string_view source, absl::string_view id);

// Index keys (exposed for the store implementations and tests). Newest
// first: the create time in microseconds is stored inverted, big-endian.
std::string OwnerIndexKey(const StoredMedia& media);
std::string OwnerIndexPrefix(absl::string_view owner);
std::string PublicIndexKey(const StoredMedia& media);
// Whether a record belongs in the owner index / the public index.
bool IsListed(const StoredMedia& media);
bool IsPublicListed(const StoredMedia& media);

}  // namespace pettube::catalog
