#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "libs/metrics/registry.h"
#include "proto/pettube/broker/v1/broker.pb.h"
#include "services/broker/access_policy.h"
#include "services/broker/broker_options.h"
#include "services/broker/broker_store.h"
#include "services/broker/consumer.h"
#include "services/broker/delivery_wire.h"
#include "services/broker/stats_watchers.h"

namespace pettube::broker {

class Committer;
class DeadLetters;
class Dispatcher;
class PublishPipeline;
class Redriver;
class Retention;
class Retrier;
class Seeker;
class SerialWorker;
class Settler;
class Subscriptions;
class TimerQueue;
struct BrokerState;

// The event router: durable log with dedup, subscriptions with indexed
// filters, and dispatch to competing consumers with leases, retries with
// backoff, per-key ordering and dead letters. No gRPC here: BrokerService
// maps requests to these calls.
//
// A thin front over its parts, one job each (docs/architecture.md): the
// PublishPipeline (publish and routing), Dispatcher (dispatch), Settler
// (leases), Retrier (retries), DeadLetters, Subscriptions (CRUD), Seeker
// (seek, backfill), Redriver, Retention and BrokerProbe (metrics), sharing
// a BrokerState.
//
// Thread-safe. One mutex guards subscriptions and dispatch state; durable
// changes go through the Committer (single writer, group commit); time and
// deadlines through one Clock.
class Broker {
 public:
  using Options = BrokerOptions;

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
  // at a time (a second between chunks; returns early if the broker stops).
  absl::StatusOr<int64_t> Redrive(const std::string& name, int64_t max_events, int max_per_second,
                                  const Access& access = Access::Unchecked());
  absl::StatusOr<v1::StreamInfo> GetStreamInfo();

  // The same changes without a waiting thread: `done` runs once the change
  // is durable, from the committer thread (or, for Redrive between chunks,
  // a timer's; inline when refused up front). What BrokerService calls, so
  // no gRPC thread waits for an fsync. The waiting forms above wrap these.
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;
  void CreateSubscription(const std::string& id, const v1::Subscription& settings,
                          const Access& access, Done<v1::Subscription> done);
  void UpdateSubscription(const v1::Subscription& subscription,
                          const std::vector<std::string>& paths, const Access& access,
                          Done<v1::Subscription> done);
  void DeleteSubscription(const std::string& name, const Access& access,
                          std::function<void(absl::Status)> done);
  void Seek(const std::string& name, const v1::StartPosition& position, const Access& access,
            Done<v1::Subscription> done);
  void ListDeadLetters(const std::string& name, int page_size, const std::string& page_token,
                       const Access& access, Done<v1::ListDeadLettersResponse> done);
  void Redrive(const std::string& name, int64_t max_events, int max_per_second,
               const Access& access, Done<int64_t> done);

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
  void EnforceRetention();

  // Bytes of events in the cache of recent events (on /metrics too).
  size_t EventCacheBytes();

  // Limits and defaults.
  static constexpr int kMaxCredits = 10000;
  size_t max_response_bytes() const;

 private:
  Broker(BrokerStore* store, Options options, metrics::Registry* registry);
  absl::Status Load();
  // Cancels every timer the broker set (in ~Broker).
  void CancelTimers();
  void CollectMetrics();

  const std::unique_ptr<BrokerState> state_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<Settler> settler_;
  std::unique_ptr<Retrier> retrier_;
  std::unique_ptr<DeadLetters> dead_letters_;
  std::unique_ptr<Redriver> redriver_;
  std::unique_ptr<Subscriptions> subscriptions_;
  std::unique_ptr<Seeker> seeker_;
  std::unique_ptr<Retention> retention_;
  std::unique_ptr<PublishPipeline> publisher_;
  // Lets the registry's scrape callback outlive this broker safely.
  struct CollectHook;
  std::shared_ptr<CollectHook> collect_hook_;

  // Declared last: stop threads before the state they touch goes away.
  std::unique_ptr<TimerQueue> own_timers_;
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<SerialWorker> reader_;
};

}  // namespace pettube::broker
