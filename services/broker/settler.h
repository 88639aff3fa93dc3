#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Leases: settles them (ack, nack, release, extend), expires them at their
// deadline, and hands released ones to the Retrier. An ack raises the
// subscription's ack floor in the group commit.
//
// Thread-safe: methods named *Locked need the state's mutex held, the
// others take it.
class Settler {
 public:
  explicit Settler(BrokerState& state) : s_(state) {}

  // Settles deliveries; results (one per lease) go to the consumer's
  // SettleResults when `confirm` (after acks are durable), and always for
  // refused ones.
  void Settle(ConsumerId id, const v1::Settle& settle, bool confirm) ABSL_LOCKS_EXCLUDED(s_.mu);

  // The lease failed (nack, expiry, consumer gone): to the retry set or
  // the dead letters, with `error` as its last error.
  void ReleaseLeaseLocked(SubState& sub, LeaseKey lease_id, const std::string& error,
                          std::optional<absl::Duration> delay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  // A lease whose delivery never reached the client: back to the front of
  // the ready queue, its attempt not counted.
  void ReturnUnsentLocked(SubState& sub, LeaseKey lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  // Keeps the expiry timer at the earliest lease deadline.
  void ScheduleExpiryLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

 private:
  // Expires every lease whose deadline passed, then waits for the next.
  void OnLeasesDue(uint32_t sub_id, uint64_t generation) ABSL_LOCKS_EXCLUDED(s_.mu);
  // Removes the lease from the table and its consumer; nullopt if gone.
  std::optional<Lease> TakeLeaseLocked(SubState& sub, LeaseKey key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

  BrokerState& s_;
};

}  // namespace pettube::broker
