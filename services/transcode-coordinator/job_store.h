#pragma once

// Storage of the coordinator: one MediaRecord per media item (its plan and
// every job's state machine), the causes already applied (ids of events or
// requests, so a redelivered event changes nothing), and the outbox of
// events still to be published. Each Commit is one atomic write.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "services/transcode-coordinator/coordinator_storage.pb.h"

namespace pettube::transcode {

// Implementations are thread-safe.
class JobStore {
 public:
  // One atomic transition.
  struct Write {
    // The record after the transition.
    storage::MediaRecord media;
    // Id of what caused it (e.g. "{source} {event id}"), remembered so the
    // same cause is never applied twice; empty for none.
    std::string cause;
    // Events to publish (added to the outbox).
    std::vector<io::cloudevents::v1::CloudEvent> outbox_add;
    // Outbox entries now published (removed), by event id.
    std::vector<std::string> outbox_remove;
  };

  virtual ~JobStore() = default;

  // The record of `media_id`; nullopt when unknown.
  virtual absl::StatusOr<std::optional<storage::MediaRecord>> GetMedia(
      absl::string_view media_id) = 0;
  // Whether `cause` was committed.
  virtual absl::StatusOr<bool> HasCause(absl::string_view cause) = 0;
  // Applies `write` atomically and durably (synced).
  virtual absl::Status Commit(const Write& write) = 0;
  // Removes published outbox entries (no record change).
  virtual absl::Status RemoveOutbox(const std::vector<std::string>& event_ids) = 0;
  // Every event still in the outbox, oldest first.
  virtual absl::StatusOr<std::vector<io::cloudevents::v1::CloudEvent>> LoadOutbox() = 0;
};

}  // namespace pettube::transcode
