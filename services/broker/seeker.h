#pragma once

#include <cstdint>
#include <functional>
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

  // Answers `done` from the committer thread once the rebuilt queue is
  // durable (inline when refused up front).
  void Seek(const std::string& name, const v1::StartPosition& position, const Access& access,
            std::function<void(absl::StatusOr<v1::Subscription>)> done) ABSL_LOCKS_EXCLUDED(s_.mu);

  // The sequences a subscription with `filter` starting at `position` owes
  // (none for latest), read from the log. Takes no lock: callers run it in
  // an exclusive committer op, so it sees every earlier publish.
  absl::Status Backfill(const v1::Filter& filter, const v1::StartPosition& position,
                        std::vector<uint64_t>* seqs) ABSL_LOCKS_EXCLUDED(s_.mu);

 private:
  BrokerState& s_;
};

}  // namespace pettube::broker
