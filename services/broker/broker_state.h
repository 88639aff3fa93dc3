#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/access_policy.h"
#include "services/broker/broker_options.h"
#include "services/broker/broker_probe.h"
#include "services/broker/broker_store.h"
#include "services/broker/clock.h"
#include "services/broker/committer.h"
#include "services/broker/consumer.h"
#include "services/broker/event_cache.h"
#include "services/broker/filter_index.h"
#include "services/broker/held_event.h"
#include "services/broker/lease_table.h"
#include "services/broker/retry_queue.h"
#include "services/broker/serial_worker.h"
#include "services/broker/stats_watchers.h"

namespace pettube::broker {

class DeadLetters;
class Dispatcher;
class Retention;
class Retrier;
class Seeker;
class Settler;
class Subscriptions;

// An attached consumer: its credits and the leases it holds.
struct ConsumerState {
  ConsumerId id;
  uint32_t sub;
  Consumer* consumer;
  int credits;
  std::string name;
  absl::flat_hash_set<LeaseKey> leases;
};

// One subscription's state in memory: its settings, what it owes and
// where reading its queue stands, what is ready, leased, retrying or
// waiting on an ordering key.
struct SubState {
  uint32_t id = 0;
  v1::Subscription config;
  // The identity that created it ("" when created without credentials).
  std::string owner;
  // Bytes of the events held below (HeldEvent counts them); declared
  // before the containers so it outlives them.
  int64_t held_bytes = 0;
  // Next queue sequence to read from the store; everything below it that is
  // still queued is tracked in memory (ready, leased, retrying, blocked).
  uint64_t load_cursor = 0;
  // True when the store holds no queued sequence >= load_cursor.
  bool caught_up = false;
  // A refill is reading the store (off the lock). Results of a refill
  // started before `refill_generation` changed (a seek or redrive moved
  // the queue under it) are dropped; `routed` counts events published to
  // the subscription, so a refill that raced a publish does not conclude
  // it caught up.
  bool refill_in_flight = false;
  uint64_t refill_generation = 0;
  // A redrive's write is pending that a refill must see.
  bool refill_paused = false;
  uint64_t routed = 0;
  std::deque<ReadyEntry> ready;
  // Every sequence below load_cursor not yet settled for good (ready,
  // leased, retrying or blocked).
  absl::btree_set<uint64_t> outstanding;
  // Everything below it is settled: what acks write instead of one
  // deletion per entry.
  uint64_t AckFloor() const { return outstanding.empty() ? load_cursor : *outstanding.begin(); }
  // Bumped by changes to the stored queue that a floor or deletion computed
  // earlier must not undo: a seek rebuilds the queue (earlier acks are
  // void), a redrive re-queues old sequences (an earlier floor may lie
  // above them). Read on the committer thread, hence shared and atomic.
  struct QueueEpochs {
    std::atomic<uint64_t> seek{0};
    std::atomic<uint64_t> redrive{0};
    // The floor last put in a batch; committer thread only.
    uint64_t floor_written = 0;
  };
  std::shared_ptr<QueueEpochs> epochs = std::make_shared<QueueEpochs>();
  // Deliveries so far of events not yet settled for good.
  struct Attempt {
    int attempts = 0;
    std::string last_error;
    absl::Time first_delivery = absl::InfinitePast();
    // A PendingRecord exists in the store (deleted with the event's queue
    // entry); most events are acked first time and never write one.
    bool persisted = false;
    // A redriven dead letter: the PendingRecord holds the event, owed
    // whatever retention does to the log's copy.
    bool owed_copy = false;
  };
  absl::flat_hash_map<uint64_t, Attempt> attempts;
  RetryQueue retry;
  LeaseTable leases;
  // Ordering: the sequence holding each busy key, and events waiting on it.
  absl::flat_hash_map<std::string, uint64_t> key_owner;
  absl::flat_hash_map<uint64_t, std::string> key_of;
  absl::flat_hash_map<std::string, std::deque<ReadyEntry>> blocked;
  size_t blocked_count = 0;
  std::vector<ConsumerId> consumers;
  size_t next_consumer = 0;
  int64_t backlog = 0;
  int64_t dead_count = 0;
  SubscriptionProbe probe;
};

// What the broker's parts share: the store, the committer, time, and, under
// one mutex, the subscriptions and consumers. Each part holds a reference
// to it and reaches the others through `parts`.
//
// The mutex guards every field marked so; the rest is set once in
// Broker::Open and read-only after.
struct BrokerState {
  BrokerState(BrokerStore* store, BrokerOptions options, metrics::Registry& registry)
      : store(store),
        options(options),
        probe(registry),
        recent(options.event_cache_events, static_cast<size_t>(options.event_cache_bytes)) {}

  // The subscription named `name`, or null.
  SubState* FindLocked(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = sub_by_name.find(name);
    if (it == sub_by_name.end()) return nullptr;
    return subs[it->second].get();
  }
  // OK, or PERMISSION_DENIED unless `access` may use the subscription.
  absl::Status MayUseLocked(const SubState& sub, const Access& access)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  BrokerStore* const store;
  const BrokerOptions options;
  BrokerProbe probe;
  Clock* clock = nullptr;
  Committer* committer = nullptr;
  // Runs the refills' store reads, off the lock.
  SerialWorker* reader = nullptr;

  struct Parts {
    Dispatcher* dispatcher = nullptr;
    Settler* settler = nullptr;
    Retrier* retrier = nullptr;
    DeadLetters* dead_letters = nullptr;
    Subscriptions* subscriptions = nullptr;
    Seeker* seeker = nullptr;
    Retention* retention = nullptr;
  } parts;

  absl::Mutex mu;
  absl::flat_hash_map<uint32_t, std::unique_ptr<SubState>> subs ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, uint32_t> sub_by_name ABSL_GUARDED_BY(mu);
  FilterIndex index ABSL_GUARDED_BY(mu);
  // Events just published or read, shared by the subscriptions' refills.
  EventCache recent ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<ConsumerId, std::unique_ptr<ConsumerState>> consumers ABSL_GUARDED_BY(mu);
  StatsWatchers watchers ABSL_GUARDED_BY(mu);
  absl::BitGen rng ABSL_GUARDED_BY(mu);
  bool draining ABSL_GUARDED_BY(mu) = false;

  // The last sequence given to an event; written by the committer thread
  // only, read anywhere. Its event may not be written, or durable, yet.
  std::atomic<uint64_t> last_seq{0};
  // Every published event up to it is durable: raised by a publish's
  // `done` (after the sync that covers it) before the event is handed to
  // subscriptions. The store shows events written and not yet synced: what
  // reads it for subscribers (refills) takes nothing above this.
  std::atomic<uint64_t> durable_seq{0};
  // Committer-thread-only: the next subscription's internal id.
  uint32_t next_sub_id = 1;
};

}  // namespace pettube::broker
