#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Dispatch: pushes a subscription's ready events to its consumers with
// credits, round-robin, keeping per-key order; refills the ready list from
// the store on the reader thread, off the lock; attaches and detaches
// consumers and takes their credits.
//
// Thread-safe: methods named *Locked need the state's mutex held, the
// others take it.
class Dispatcher {
 public:
  // Events kept in memory per subscription ahead of its consumers: a slow
  // or stuck consumer must not make the broker hold the backlog in memory.
  static constexpr size_t kMaxReadyInMemory = 1024;

  explicit Dispatcher(BrokerState& state) : s_(state) {}

  // Adds a consumer with `credits` to `sub`; the caller pumps.
  ConsumerId AttachLocked(SubState& sub, int credits, const std::string& name, Consumer* consumer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  // Releases the consumer's leases (those in `unsent` without counting an
  // attempt) and forgets it.
  void Detach(ConsumerId id, const std::vector<std::string>& unsent) ABSL_LOCKS_EXCLUDED(s_.mu);
  // INVALID_ARGUMENT past Broker::kMaxCredits, NOT_FOUND if not attached.
  absl::Status AddCredits(ConsumerId id, int credits, int max_credits) ABSL_LOCKS_EXCLUDED(s_.mu);
  // Ends every consumer stream of `sub` with `status`.
  void CloseConsumersLocked(SubState& sub, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

  // Dispatches what it can, then tells stats watchers of any change.
  void PumpLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  // `seq` is settled for good (acked, dead-lettered, gone): forgets it and
  // lets the next event waiting on its ordering key go.
  void FinishSeqLocked(SubState& sub, uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

 private:
  void DispatchLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  // True if an entry is ready; starts a refill when few are.
  bool RefillLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);
  // A refill's store reads, on the reader thread (off the lock), then hands
  // the entries to the subscription and pumps it.
  void RefillFromStore(uint32_t sub_id, uint64_t from, uint64_t generation, uint64_t routed)
      ABSL_LOCKS_EXCLUDED(s_.mu);
  ConsumerState* NextConsumerLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu);

  BrokerState& s_;
  ConsumerId next_consumer_id_ ABSL_GUARDED_BY(s_.mu) = 1;
  uint64_t lease_nonce_ ABSL_GUARDED_BY(s_.mu) = 0;
};

}  // namespace pettube::broker
