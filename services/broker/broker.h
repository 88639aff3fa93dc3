#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "libs/metrics/registry.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/access_policy.h"
#include "services/broker/broker_store.h"
#include "services/broker/clock.h"
#include "services/broker/committer.h"
#include "services/broker/delivery_wire.h"
#include "services/broker/event_cache.h"
#include "services/broker/filter_index.h"
#include "services/broker/held_event.h"
#include "services/broker/serial_worker.h"
#include "services/broker/stats_watchers.h"
#include "services/broker/timer_queue.h"

namespace pettube::broker {

// A per-item outcome (on streams and in batches) in the API's Status shape.
v1::Status ToProtoStatus(const absl::Status& status);

// The side of a Subscribe stream the broker pushes to. Implemented by the
// gRPC reactor; a fake in tests. Called with the broker's lock held: must
// not block and must not call back into the Broker.
class Consumer {
 public:
  virtual ~Consumer() = default;
  virtual void Deliver(OutboundDelivery delivery) = 0;
  virtual void SettleResults(std::vector<v1::SettleResult> results) = 0;
  // The broker ends the stream (subscription deleted, broker draining).
  virtual void Close(const absl::Status& status) = 0;
};

// Handle of an attached consumer.
using ConsumerId = uint64_t;

// Identifies one delivery's lease inside the broker (the last part of the
// lease id on the wire). Unique for the broker's lifetime.
using LeaseKey = uint64_t;

// The event router: durable log with dedup, subscriptions with indexed
// filters, and dispatch to competing consumers with leases, retries with
// backoff, per-key ordering and dead letters. No gRPC here: BrokerService
// maps requests to these calls.
//
// Thread-safe. One mutex guards subscriptions and dispatch state; durable
// changes go through the Committer (single writer, group commit); deadlines
// through one TimerQueue.
class Broker {
 public:
  struct Options {
    // Same source+id within this window is a duplicate.
    absl::Duration dedup_window = absl::Hours(24);
    // Largest serialized event accepted.
    size_t max_event_bytes = 1 << 20;
    // fsync before acking publishes. Off only for tests that need speed over
    // crash safety.
    bool sync = true;
    // Retention of the log (0 = unlimited).
    absl::Duration retention_max_age = absl::Hours(24 * 7);
    int64_t retention_max_bytes = 0;
    // Largest message sent to a client (a Subscribe response, a
    // ListDeadLetters page), bytes; an event bigger than this still goes,
    // alone. The default fits a default gRPC client's 4 MiB receive limit.
    size_t max_response_bytes = (4 << 20) - (64 << 10);
    // Who may publish what and use which subscriptions besides their own;
    // null: no rules beyond ownership (not owned; must outlive the broker).
    const AccessPolicy* access_policy = nullptr;
    // Bytes of events one subscription holds in memory (ready, leased,
    // retrying, waiting on a key) at most; past it loading and delivering
    // pause until settlements free room (backpressure, never an OOM).
    // Retrying and key-blocked events keep theirs only within half of it
    // (the rest are read again when due).
    int64_t max_subscription_bytes = 128 << 20;
    // Events just published or read, kept for the subscriptions' refills:
    // at most this many, of at most this many bytes (part of the memory
    // budget main.cc divides).
    size_t event_cache_events = 8192;
    int64_t event_cache_bytes = 32 << 20;
    // Time and deadlines (not owned; must outlive the broker); null: real
    // time, a TimerQueue the broker owns. Tests pass a FakeClock.
    Clock* clock = nullptr;
  };

  // Loads subscriptions and their backlogs from `store` (not owned).
  static absl::StatusOr<std::unique_ptr<Broker>> Open(BrokerStore* store, Options options,
                                                      metrics::Registry* registry);
  ~Broker();

  // ----------------------------------------------------------- publishing
  // Validates and durably appends the events; `done` gets one result per
  // event, in order, once all are durable (from the committer thread).
  using PublishDone = std::function<void(std::vector<v1::PublishResult>)>;
  // Events `access` may not publish (AccessPolicy) get PERMISSION_DENIED.
  void Publish(std::vector<CloudEvent> events, PublishDone done,
               const Access& access = Access::Unchecked());

  // --------------------------------------------------------- subscriptions
  // A subscription belongs to the identity that created it: only it, a
  // workload the access policy grants it to, or an admin may attach,
  // update, delete, seek, redrive or list its dead letters
  // (PERMISSION_DENIED otherwise). Get and stats are open to all callers.
  absl::StatusOr<v1::Subscription> CreateSubscription(const std::string& id,
                                                      const v1::Subscription& settings,
                                                      const Access& access = Access::Unchecked());
  absl::StatusOr<v1::Subscription> GetSubscription(const std::string& name);
  absl::StatusOr<v1::ListSubscriptionsResponse> ListSubscriptions(int page_size,
                                                                  const std::string& page_token);
  absl::StatusOr<v1::Subscription> UpdateSubscription(const v1::Subscription& subscription,
                                                      const std::vector<std::string>& paths,
                                                      const Access& access = Access::Unchecked());
  absl::Status DeleteSubscription(const std::string& name,
                                  const Access& access = Access::Unchecked());
  absl::StatusOr<v1::Subscription> Seek(const std::string& name, const v1::StartPosition& position,
                                        const Access& access = Access::Unchecked());
  absl::StatusOr<v1::ListDeadLettersResponse> ListDeadLetters(
      const std::string& name, int page_size, const std::string& page_token,
      const Access& access = Access::Unchecked());
  // Moves up to `max_events` (0: all) dead letters back, `max_per_second`
  // at a time (waits between chunks; returns early if the broker stops).
  absl::StatusOr<int64_t> Redrive(const std::string& name, int64_t max_events, int max_per_second,
                                  const Access& access = Access::Unchecked());
  absl::StatusOr<v1::StreamInfo> GetStreamInfo();

  // ----------------------------------------------------------- stats watch
  // Starts watching a subscription's stats: `observer` hears of each change
  // of its backlog or in-flight count (StatsChanged) until UnwatchStats or
  // until the watch is closed (NOT_FOUND: deleted; OK: draining). `initial`
  // gets the stats now. NOT_FOUND for an unknown subscription, UNAVAILABLE
  // when draining, INVALID_ARGUMENT for a malformed name.
  absl::StatusOr<WatchId> WatchStats(const std::string& name, StatsObserver* observer,
                                     v1::SubscriptionStats* initial);
  // After this returns the broker never calls the watch's observer again.
  void UnwatchStats(WatchId id);
  // The subscription's stats now (as GetSubscription has them).
  absl::StatusOr<v1::SubscriptionStats> GetStats(const std::string& name);

  // -------------------------------------------------------------- dispatch
  // Attaches a consumer with initial credits. NOT_FOUND for an unknown
  // subscription, INVALID_ARGUMENT for credits out of range.
  absl::StatusOr<ConsumerId> Attach(const std::string& subscription, int credits,
                                    const std::string& consumer_name, Consumer* consumer,
                                    v1::Subscription* settings,
                                    const Access& access = Access::Unchecked());
  // Releases the consumer's unsettled deliveries for redelivery at once.
  // Those in `unsent` (lease ids the stream never wrote to its client) go
  // back without counting an attempt. After this returns the broker never
  // calls `consumer` again.
  void Detach(ConsumerId id, const std::vector<std::string>& unsent = {});
  absl::Status AddCredits(ConsumerId id, int credits);
  // Settles deliveries; results (one per lease) go to the consumer's
  // SettleResults when `confirm` (after acks are durable), and always for
  // refused ones.
  void Settle(ConsumerId id, const v1::Settle& settle, bool confirm);

  // Ends every consumer stream with UNAVAILABLE and refuses new work.
  void Drain();

  // Removes events past retention: older than max_age (owed or not: their
  // retention expired), or, above max_bytes, the oldest events no
  // subscription still owes. Runs by itself on a timer set for when the
  // oldest event expires and when the log grows; public for operators and
  // tests.
  void EnforceRetention() ABSL_LOCKS_EXCLUDED(mu_);

  // Limits and defaults.
  static constexpr int kMaxCredits = 10000;
  size_t max_response_bytes() const { return options_.max_response_bytes; }

 private:
  struct Lease;
  struct SubState;
  struct ConsumerState;
  struct ReadyEntry {
    uint64_t seq;
    HeldEvent event;  // null: read from the store
  };

  Broker(BrokerStore* store, Options options, metrics::Registry* registry);
  absl::Status Load();
  // Cancels every timer the broker set (in ~Broker).
  void CancelTimers() ABSL_LOCKS_EXCLUDED(mu_);

  void PreparePublish(std::vector<CloudEvent>& events, std::vector<v1::PublishResult>& results,
                      std::vector<std::shared_ptr<const StoredEvent>>& stored,
                      std::vector<std::vector<uint32_t>>& routes, BrokerStore::Batch& batch);
  void AfterPublish(const std::vector<std::shared_ptr<const StoredEvent>>& stored,
                    const std::vector<std::vector<uint32_t>>& routes);

  // Adds a loaded or created subscription to the maps, index and metrics.
  void RegisterLocked(std::unique_ptr<SubState> sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnregisterLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SubState* FindLocked(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // OK, or PERMISSION_DENIED unless `access` may use the subscription.
  absl::Status MayUseLocked(const SubState& sub, const Access& access)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Subscription DescribeLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The sequences a subscription starting at `position` owes (none for
  // latest), read from the log.
  absl::Status Backfill(const SubState& sub, const v1::StartPosition& position,
                        std::vector<uint64_t>* seqs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Dispatch internals.
  // Dispatches what it can, then tells stats watchers of any change.
  void PumpLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True if an entry is ready; starts a refill when few are.
  bool RefillLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A refill's store reads, on reader_ (off the lock), then hands the
  // entries to the subscription and pumps it.
  void RefillFromStore(uint32_t sub_id, uint64_t from, uint64_t generation, uint64_t routed)
      ABSL_LOCKS_EXCLUDED(mu_);
  ConsumerState* NextConsumerLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLeaseLocked(SubState& sub, LeaseKey lease_id, const std::string& error,
                          std::optional<absl::Duration> delay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A lease whose delivery never reached the client: back to the front of
  // the ready queue, its attempt not counted.
  void ReturnUnsentLocked(SubState& sub, LeaseKey lease_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetryOrDeadLetterLocked(SubState& sub, uint64_t seq, std::optional<absl::Duration> delay,
                               HeldEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `reason` by value: callers pass strings that live in the state this erases.
  void DeadLetterLocked(SubState& sub, uint64_t seq, std::string reason,
                        std::shared_ptr<const StoredEvent> event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishSeqLocked(SubState& sub, uint64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A redriven event's copy, for when retention removed the log's.
  absl::StatusOr<std::optional<StoredEvent>> OwedCopyLocked(SubState& sub, uint64_t seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Expires every lease whose deadline passed, then waits for the next.
  void OnLeasesDue(uint32_t sub_id, uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  void ScheduleExpiryLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnRetryDue(uint32_t sub_id, uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  void ScheduleRetryWakeLocked(SubState& sub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration BackoffLocked(const SubState& sub, int attempts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseConsumersLocked(SubState& sub, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CollectMetrics();
  void ScheduleRetentionLocked(absl::Time at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Options::clock, or own_timers_.
  Clock* clock_ = nullptr;
  BrokerStore* const store_;
  const Options options_;
  metrics::Registry* const registry_;

  absl::Mutex mu_;
  absl::flat_hash_map<uint32_t, std::unique_ptr<SubState>> subs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint32_t> sub_by_name_ ABSL_GUARDED_BY(mu_);
  FilterIndex index_ ABSL_GUARDED_BY(mu_);
  // Events just published or read, shared by the subscriptions' refills.
  EventCache recent_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ConsumerId, std::unique_ptr<ConsumerState>> consumers_ ABSL_GUARDED_BY(mu_);
  StatsWatchers watchers_ ABSL_GUARDED_BY(mu_);
  ConsumerId next_consumer_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t lease_nonce_ ABSL_GUARDED_BY(mu_) = 0;
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Clock::TimerId> retention_timer_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_since_retention_ ABSL_GUARDED_BY(mu_) = 0;

  // Written by the committer thread only; read anywhere.
  std::atomic<uint64_t> last_seq_{0};
  // Committer-thread-only state (touched in prepare/done callbacks).
  uint32_t next_sub_id_ = 1;
  // source+id of events prepared in the current group, not yet durable.
  absl::flat_hash_map<std::string, uint64_t> unwritten_dedup_;

  // Published-event counters.
  metrics::Counter* published_;
  metrics::Counter* duplicates_;
  metrics::Counter* rejected_;
  metrics::Histogram* commit_seconds_;
  metrics::Histogram* commit_ops_;
  // Lets the registry's scrape callback outlive this broker safely.
  struct CollectHook;
  std::shared_ptr<CollectHook> collect_hook_;
  // Notified by Drain(): wakes rate-limited redrives.
  absl::Notification drained_;

  // Declared last: stop threads before the state they touch goes away.
  std::unique_ptr<TimerQueue> own_timers_;
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<SerialWorker> reader_;
};

}  // namespace pettube::broker
