#pragma once

#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Retries: an event whose delivery failed waits out its backoff (or the
// nack's delay) in the subscription's RetryQueue and goes back to the front
// of the ready list when due; one with no attempts left becomes a dead
// letter. Attempt counts are recorded (unsynced) so they survive a restart.
//
// Thread-safe: methods named *Locked need the state's mutex held.
class Retrier {
 public:
  explicit Retrier(BrokerState& state) : s_(state) {}

  void RetryOrDeadLetterLocked(SubState& sub, uint64_t seq, std::optional<absl::Duration> delay,
                               HeldEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

 private:
  void ScheduleWakeLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  void OnRetryDue(uint32_t sub_id, uint64_t generation) ABSL_LOCKS_EXCLUDED(s_.mu);

  BrokerState& s_;
};

}  // namespace pettube::broker
