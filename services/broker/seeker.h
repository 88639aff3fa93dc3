#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Seek: rebuilds a subscription's queue from the log at a start position
// (earliest, a sequence, a time; latest owes nothing), dropping leases,
// retries and attempts; and the same scan for a subscription created with
// a start position (backfill).
//
// Thread-safe.
class Seeker {
 public:
  explicit Seeker(BrokerState& state) : s_(state) {}

  absl::StatusOr<v1::Subscription> Seek(const std::string& name, const v1::StartPosition& position,
                                        const Access& access) ABSL_LOCKS_EXCLUDED(s_.mu);

  // The sequences a subscription starting at `position` owes (none for
  // latest), read from the log.
  absl::Status Backfill(const SubState& sub, const v1::StartPosition& position,
                        std::vector<uint64_t>* seqs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

 private:
  BrokerState& s_;
};

}  // namespace pettube::broker
