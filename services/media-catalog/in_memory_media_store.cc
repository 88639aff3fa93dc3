#include "services/media-catalog/in_memory_media_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pettube::catalog {

absl::Status InMemoryMediaStore::Read(absl::string_view media_id, StoredMedia* out) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(std::string(media_id));
  if (it == records_.end())
    return absl::NotFoundError(absl::StrCat("media/", media_id, ": no record"));
  *out = it->second;
  return absl::OkStatus();
}

absl::StatusOr<bool> InMemoryMediaStore::ReadFromMemory(absl::string_view media_id,
                                                        StoredMedia* out) {
  if (absl::Status read = Read(media_id, out); !read.ok()) return read;
  return true;
}

absl::StatusOr<bool> InMemoryMediaStore::IsApplied(absl::string_view event_key) {
  absl::MutexLock lock(&mu_);
  return applied_.contains(event_key);
}

absl::Status InMemoryMediaStore::Write(const StoredMedia& record, uint64_t expected_version,
                                       absl::string_view event_key,
                                       const io::cloudevents::v1::CloudEvent* outbox) {
  if (record.media_id().empty()) return absl::InvalidArgumentError("record.media_id: empty");
  if (record.version() != expected_version + 1) {
    return absl::InvalidArgumentError("record.version: must be expected_version + 1");
  }
  absl::MutexLock lock(&mu_);
  if (fail_writes_) return absl::UnavailableError("in-memory store: writes failing");
  if (!event_key.empty() && applied_.contains(event_key)) {
    return absl::AlreadyExistsError("event already applied");
  }
  auto it = records_.find(record.media_id());
  const uint64_t current = it == records_.end() ? 0 : it->second.version();
  if (current != expected_version) {
    return absl::AbortedError(absl::StrCat("media/", record.media_id(), ": version is ", current,
                                           ", not ", expected_version));
  }
  if (it != records_.end()) {
    if (IsListed(it->second)) owner_index_.erase(OwnerIndexKey(it->second));
    if (IsPublicListed(it->second)) public_index_.erase(PublicIndexKey(it->second));
  }
  if (IsListed(record)) owner_index_[OwnerIndexKey(record)] = record.media_id();
  if (IsPublicListed(record)) public_index_[PublicIndexKey(record)] = record.media_id();
  records_[record.media_id()] = record;
  if (!event_key.empty()) applied_.insert(std::string(event_key));
  if (outbox != nullptr) outbox_[outbox->id()] = *outbox;
  ++writes_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<io::cloudevents::v1::CloudEvent>> InMemoryMediaStore::Outbox() {
  absl::MutexLock lock(&mu_);
  std::vector<io::cloudevents::v1::CloudEvent> events;
  for (const auto& [id, event] : outbox_) events.push_back(event);
  return events;
}

absl::Status InMemoryMediaStore::RemoveFromOutbox(absl::string_view event_id) {
  absl::MutexLock lock(&mu_);
  outbox_.erase(std::string(event_id));
  return absl::OkStatus();
}

absl::Status InMemoryMediaStore::MarkApplied(absl::string_view, absl::string_view event_key) {
  absl::MutexLock lock(&mu_);
  if (fail_writes_) return absl::UnavailableError("in-memory store: writes failing");
  if (!applied_.insert(std::string(event_key)).second) {
    return absl::AlreadyExistsError("event already applied");
  }
  return absl::OkStatus();
}

absl::StatusOr<ScanResult> InMemoryMediaStore::Scan(const ScanRequest& request) {
  if (request.limit < 1) return absl::InvalidArgumentError("scan.limit: must be at least 1");
  absl::MutexLock lock(&mu_);
  std::string prefix;
  std::map<std::string, std::string> all;
  const std::map<std::string, std::string>* index = &all;
  switch (request.index) {
    case MediaIndex::kOwner:
      if (request.owner.empty()) return absl::InvalidArgumentError("scan.owner: empty");
      prefix = OwnerIndexPrefix(request.owner);
      index = &owner_index_;
      break;
    case MediaIndex::kPublic:
      index = &public_index_;
      break;
    case MediaIndex::kAll:
      for (const auto& [id, media] : records_) {
        if (IsListed(media)) all[id] = id;
      }
      break;
  }
  if (!request.after.empty() && !absl::StartsWith(request.after, prefix)) {
    return absl::InvalidArgumentError("scan.after: not in the scanned index range");
  }
  ScanResult result;
  result.last_key = request.after;
  auto it = request.after.empty() ? index->lower_bound(prefix) : index->upper_bound(request.after);
  int scanned = 0;
  for (; it != index->end() && absl::StartsWith(it->first, prefix); ++it) {
    if (static_cast<int>(result.media.size()) >= request.limit || scanned >= request.max_scan) {
      return result;
    }
    ++scanned;
    result.last_key = it->first;
    const StoredMedia& media = records_.at(it->second);
    if (request.filter && !request.filter(media)) continue;
    result.media.push_back(media);
  }
  result.end = true;
  return result;
}

absl::Status InMemoryMediaStore::Checkpoint(const std::string&) {
  return absl::UnimplementedError("in-memory store: no checkpoints");
}

absl::StatusOr<std::string> InMemoryMediaStore::Secret() { return std::string(32, 'k'); }

absl::StatusOr<bool> InMemoryMediaStore::IsEmpty() {
  absl::MutexLock lock(&mu_);
  return records_.empty() && applied_.empty();
}

void InMemoryMediaStore::set_fail_writes(bool fail) {
  absl::MutexLock lock(&mu_);
  fail_writes_ = fail;
}

int InMemoryMediaStore::writes() {
  absl::MutexLock lock(&mu_);
  return writes_;
}

}  // namespace pettube::catalog
