#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Redrive: moves a subscription's dead letters back to its queue, a chunk
// per second at most, each event owed again with its attempts starting
// over (its copy moves to the pending record, which retention never
// touches).
//
// Thread-safe.
class Redriver {
 public:
  explicit Redriver(BrokerState& state) : s_(state) {}

  // Moves up to `max_events` (0: all), `max_per_second` at a time.
  absl::StatusOr<int64_t> Redrive(const std::string& name, int64_t max_events, int max_per_second,
                                  const Access& access) ABSL_LOCKS_EXCLUDED(s_.mu);

 private:
  BrokerState& s_;
};

}  // namespace pettube::broker
