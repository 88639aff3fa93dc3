#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Retention of the log: by age, events older than retention_max_age go,
// owed or not; by size, above retention_max_bytes, the oldest events no
// subscription still owes go. Runs on a timer set just past the oldest
// event's expiry, and when the log has grown by a sixteenth of its size
// limit.
//
// Thread-safe: methods named *Locked need the state's mutex held, the
// others take it.
class Retention {
 public:
  explicit Retention(BrokerState& state) : s_(state) {}

  // Removes what retention allows now, then sets the timer for the next.
  void Enforce() ABSL_LOCKS_EXCLUDED(s_.mu);
  // Starts the age clock with the first event after an empty log, and
  // runs the size check when the log grew enough.
  void AfterPublishLocked(const std::vector<std::shared_ptr<const StoredEvent>>& stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  void CancelLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

 private:
  void ScheduleLocked(absl::Time at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

  BrokerState& s_;
  std::optional<Clock::TimerId> timer_ ABSL_GUARDED_BY(s_.mu);
  int64_t bytes_since_ ABSL_GUARDED_BY(s_.mu) = 0;
};

}  // namespace pettube::broker
