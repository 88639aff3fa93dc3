#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/broker_state.h"

namespace pettube::broker {

// Publish and routing: validates events, then on the committer thread
// checks each against the dedup table, gives it the next sequence, routes
// it through the FilterIndex and queues it for every matching
// subscription in the group commit; once durable, answers the publisher and
// hands the events to the subscriptions caught up with their consumers.
//
// Thread-safe.
class PublishPipeline {
 public:
  using PublishDone = std::function<void(std::vector<v1::PublishResult>)>;

  explicit PublishPipeline(BrokerState& state) : s_(state) {}

  void Publish(std::vector<CloudEvent> events, PublishDone done, const Access& access)
      ABSL_LOCKS_EXCLUDED(s_.mu);
  absl::StatusOr<v1::StreamInfo> GetStreamInfo();

 private:
  void AfterPublish(const std::vector<std::shared_ptr<const StoredEvent>>& stored,
                    const std::vector<std::vector<uint32_t>>& routes) ABSL_LOCKS_EXCLUDED(s_.mu);

  // One publish op's fate, shared with the duplicates of its events that
  // later ops answered before it was written: they fail if it fails.
  struct Origin {
    bool failed = false;  // guarded by dedup_mu_
  };
  struct Unwritten {
    uint64_t sequence;
    std::shared_ptr<Origin> origin;
  };

  BrokerState& s_;
  // Source+id of events prepared and not yet durable: the committer thread
  // prepares and writes the next groups while the syncer thread syncs
  // earlier ones, so a duplicate must be found here before its
  // original is durable in the store (and is answered only after it, from
  // its own `done`). Added by `prepare` (committer thread), removed by
  // `done` (syncer thread, after the sync).
  absl::Mutex dedup_mu_;
  absl::flat_hash_map<std::string, Unwritten> unwritten_dedup_ ABSL_GUARDED_BY(dedup_mu_);
};

}  // namespace pettube::broker
