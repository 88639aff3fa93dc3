#pragma once

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "services/media-catalog/media_store.h"

namespace pettube::catalog {

// MediaStore in memory, with the same rules as RocksDbMediaStore (version
// check, applied markers, index membership), for unit tests of the core.
// `fail_writes` makes every write fail with UNAVAILABLE (storage outage).
// Thread-safe.
class InMemoryMediaStore : public MediaStore {
 public:
  absl::Status Read(absl::string_view media_id, StoredMedia* out) override ABSL_LOCKS_EXCLUDED(mu_);
  // Always true or NOT_FOUND: everything is in memory.
  absl::StatusOr<bool> ReadFromMemory(absl::string_view media_id, StoredMedia* out) override;
  absl::StatusOr<bool> IsApplied(absl::string_view event_key) override ABSL_LOCKS_EXCLUDED(mu_);
  using MediaStore::Write;
  absl::Status Write(const StoredMedia& record, uint64_t expected_version,
                     absl::string_view event_key,
                     const io::cloudevents::v1::CloudEvent* outbox) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<io::cloudevents::v1::CloudEvent>> Outbox() override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RemoveFromOutbox(absl::string_view event_id) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status MarkApplied(absl::string_view media_id, absl::string_view event_key) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<ScanResult> Scan(const ScanRequest& request) override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Checkpoint(const std::string& dir) override;
  absl::StatusOr<std::string> Secret() override;
  absl::StatusOr<bool> IsEmpty() override ABSL_LOCKS_EXCLUDED(mu_);

  void set_fail_writes(bool fail) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes that succeeded (to check that duplicates write nothing).
  int writes() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  std::map<std::string, StoredMedia> records_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> owner_index_ ABSL_GUARDED_BY(mu_);   // key -> media id
  std::map<std::string, std::string> public_index_ ABSL_GUARDED_BY(mu_);  // key -> media id
  absl::flat_hash_set<std::string> applied_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, io::cloudevents::v1::CloudEvent> outbox_ ABSL_GUARDED_BY(mu_);  // by id
  bool fail_writes_ ABSL_GUARDED_BY(mu_) = false;
  int writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pettube::catalog
