#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Dead letters: an event out of attempts or past its max age leaves the
// queue for the subscription's dead-letter queue, with a copy of the event,
// its attempts and last error; ListDeadLetters pages through them.
//
// Thread-safe: methods named *Locked need the state's mutex held, the
// others take it.
class DeadLetters {
 public:
  explicit DeadLetters(BrokerState& state) : s_(state) {}

  // `reason` by value: callers pass strings that live in the state this erases.
  void DeadLetterLocked(SubState& sub, uint64_t seq, std::string reason,
                        std::shared_ptr<const StoredEvent> event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  // A redriven event's copy, for when retention removed the log's.
  absl::StatusOr<std::optional<StoredEvent>> OwedCopyLocked(SubState& sub, uint64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

  using Done = std::function<void(absl::StatusOr<v1::ListDeadLettersResponse>)>;
  // Answers `done` from the committer thread once every dead-lettering
  // queued before is written (inline when refused up front).
  void List(const std::string& name, int page_size, const std::string& page_token,
            const Access& access, Done done) ABSL_LOCKS_EXCLUDED(s_.mu);

 private:
  absl::StatusOr<v1::ListDeadLettersResponse> ReadPage(uint32_t id, uint64_t from, int page_size);

  BrokerState& s_;
};

}  // namespace pettube::broker
