#include "services/broker/broker.h"

#include <algorithm>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"
#include "libs/time/proto_time.h"
#include "services/broker/event_validation.h"
#include "services/broker/filter.h"

namespace pettube::broker {
namespace {

constexpr size_t kRefillBatch = 256;
// A refill starts when fewer entries than this are ready, so the next batch
// is read while the current one is delivered.
constexpr size_t kRefillLowWater = 256;
// Events kept in memory per subscription ahead of its consumers: a slow or
// stuck consumer must not make the broker hold the backlog in memory.
constexpr size_t kMaxReadyInMemory = 1024;
// Bound on events a subscription holds in memory waiting behind a busy
// ordering key; past it, loading pauses until keys free up.
constexpr size_t kMaxBlocked = 10000;

using time::FromProto;
using time::ToProto;

// The CloudEvents `partitionkey` extension ("" if absent or unreadable).
std::string PartitionKey(const StoredEvent& stored) {
  CloudEvent e;
  if (!stored.Parse(&e)) return "";
  auto it = e.attributes().find("partitionkey");
  if (it == e.attributes().end()) return "";
  return it->second.ce_string();
}

}  // namespace

v1::Status ToProtoStatus(const absl::Status& status) {
  v1::Status out;
  out.set_code(static_cast<int>(status.code()));
  out.set_message(std::string(status.message()));
  return out;
}

// ----------------------------------------------------------------- state

struct Broker::Lease {
  uint64_t seq;
  int attempt;
  ConsumerId consumer;
  absl::Time deadline;
  HeldEvent event;
};

struct Broker::ConsumerState {
  ConsumerId id;
  uint32_t sub;
  Consumer* consumer;
  int credits;
  std::string name;
  absl::flat_hash_set<LeaseKey> leases;
};

struct Broker::SubState {
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
  // Waiting for their backoff to pass.
  std::map<std::pair<absl::Time, uint64_t>, HeldEvent> retry;
  EarliestTimer retry_timer;
  absl::flat_hash_map<LeaseKey, Lease> leases;
  // Lease deadlines in order, with one timer for the earliest: a delivery
  // costs a btree insert, not a timer of its own.
  absl::btree_set<std::pair<absl::Time, LeaseKey>> deadlines;
  EarliestTimer expiry_timer;
  // Ordering: the sequence holding each busy key, and events waiting on it.
  absl::flat_hash_map<std::string, uint64_t> key_owner;
  absl::flat_hash_map<uint64_t, std::string> key_of;
  absl::flat_hash_map<std::string, std::deque<ReadyEntry>> blocked;
  size_t blocked_count = 0;
  std::vector<ConsumerId> consumers;
  size_t next_consumer = 0;
  int64_t backlog = 0;
  int64_t dead_count = 0;
  metrics::Counter* delivered;
  metrics::Counter* acked;
  metrics::Counter* redelivered;
  metrics::Counter* dead_lettered;
};

struct Broker::CollectHook {
  absl::Mutex mu;
  Broker* broker ABSL_GUARDED_BY(mu);
};

// ----------------------------------------------------------------- set-up

Broker::Broker(BrokerStore* store, Options options, metrics::Registry* registry)
    : store_(store),
      options_(options),
      registry_(registry),
      recent_(options.event_cache_events, static_cast<size_t>(options.event_cache_bytes)) {
  published_ = &metrics::BuildCounter()
                    .Name("pettube_broker_events_published_total")
                    .Help("Events durably appended to the log.")
                    .Register(*registry)
                    .Add({});
  duplicates_ = &metrics::BuildCounter()
                     .Name("pettube_broker_events_duplicate_total")
                     .Help("Publishes answered as duplicates (same source+id in the dedup window).")
                     .Register(*registry)
                     .Add({});
  rejected_ = &metrics::BuildCounter()
                   .Name("pettube_broker_events_rejected_total")
                   .Help("Published events refused as invalid.")
                   .Register(*registry)
                   .Add({});
  commit_seconds_ = &metrics::BuildHistogram()
                         .Name("pettube_broker_commit_seconds")
                         .Help("Latency of one group-commit write (including fsync).")
                         .Register(*registry)
                         .Add({}, metrics::ExponentialBuckets(0.00005, 2, 16));
  commit_ops_ = &metrics::BuildHistogram()
                     .Name("pettube_broker_commit_ops")
                     .Help("Operations (publish requests, settlements) grouped per write.")
                     .Register(*registry)
                     .Add({}, metrics::ExponentialBuckets(1, 2, 12));
}

absl::StatusOr<std::unique_ptr<Broker>> Broker::Open(BrokerStore* store, Options options,
                                                     metrics::Registry* registry) {
  std::unique_ptr<Broker> broker(new Broker(store, options, registry));
  if (auto s = broker->Load(); !s.ok()) return s;
  if (options.clock == nullptr) broker->own_timers_ = std::make_unique<TimerQueue>();
  broker->clock_ = options.clock != nullptr ? options.clock : broker->own_timers_.get();
  broker->reader_ = std::make_unique<SerialWorker>();
  Broker* b = broker.get();
  broker->committer_ = std::make_unique<Committer>(
      *store, options.sync, [b](size_t ops, size_t, absl::Duration latency) {
        b->commit_seconds_->Observe(absl::ToDoubleSeconds(latency));
        b->commit_ops_->Observe(static_cast<double>(ops));
      });
  broker->collect_hook_ = std::make_shared<CollectHook>();
  {
    absl::MutexLock lock(&broker->collect_hook_->mu);
    broker->collect_hook_->broker = b;
  }
  broker->EnforceRetention();
  registry->AddCollectCallback([hook = broker->collect_hook_] {
    absl::MutexLock lock(&hook->mu);
    if (hook->broker != nullptr) hook->broker->CollectMetrics();
  });
  return broker;
}

Broker::~Broker() {
  if (collect_hook_ != nullptr) {
    absl::MutexLock lock(&collect_hook_->mu);
    collect_hook_->broker = nullptr;
  }
  Drain();              // from here timers are neither armed nor acted on
  reader_.reset();      // a refill in progress finishes first
  CancelTimers();       // a clock the broker does not own may outlive it
  own_timers_.reset();  // before the committer: a firing timer may submit
  committer_.reset();   // commits what is queued
}

void Broker::CancelTimers() {
  if (clock_ == nullptr) return;  // never opened
  absl::MutexLock lock(&mu_);
  for (auto& [id, sub] : subs_) {
    sub->expiry_timer.Cancel(*clock_);
    sub->retry_timer.Cancel(*clock_);
  }
  if (retention_timer_.has_value()) clock_->Cancel(*retention_timer_);
  retention_timer_.reset();
}

absl::Status Broker::Load() {
  auto last = store_->LastSequence();
  if (!last.ok()) return last.status();
  last_seq_ = *last;
  auto next_id = store_->NextSubscriptionId();
  if (!next_id.ok()) return next_id.status();
  next_sub_id_ = *next_id;
  auto records = store_->LoadSubscriptions();
  if (!records.ok()) return records.status();
  absl::MutexLock lock(&mu_);
  for (const storage::SubscriptionRecord& r : *records) {
    auto sub = std::make_unique<SubState>();
    sub->id = r.internal_id();
    sub->config = r.subscription();
    sub->owner = r.owner();
    // Everything below the ack floor is settled: loading starts there.
    sub->load_cursor = store_->AckFloor(sub->id);
    sub->epochs->floor_written = sub->load_cursor;
    auto backlog = store_->CountQueue(sub->id);
    if (!backlog.ok()) return backlog.status();
    sub->backlog = *backlog;
    auto dead = store_->CountDeadLetters(sub->id);
    if (!dead.ok()) return dead.status();
    sub->dead_count = *dead;
    SubState* raw = sub.get();
    auto s = store_->LoadPending(sub->id, [raw](uint64_t seq, const storage::PendingRecord& p) {
      auto& a = raw->attempts[seq];
      a.attempts = p.attempts();
      a.last_error = p.last_error();
      a.persisted = true;
      a.owed_copy = !p.event().empty();
      if (p.has_first_delivery_time()) a.first_delivery = FromProto(p.first_delivery_time());
    });
    if (!s.ok()) return s;
    RegisterLocked(std::move(sub));
  }
  return absl::OkStatus();
}

void Broker::RegisterLocked(std::unique_ptr<SubState> sub) {
  const metrics::Labels labels = {{"subscription", sub->config.name()}};
  sub->delivered = &metrics::BuildCounter()
                        .Name("pettube_broker_subscription_delivered_total")
                        .Help("Deliveries made, including redeliveries.")
                        .Register(*registry_)
                        .Add(labels);
  sub->acked = &metrics::BuildCounter()
                    .Name("pettube_broker_subscription_acked_total")
                    .Help("Events acked.")
                    .Register(*registry_)
                    .Add(labels);
  sub->redelivered = &metrics::BuildCounter()
                          .Name("pettube_broker_subscription_redelivered_total")
                          .Help("Redeliveries (attempt > 1).")
                          .Register(*registry_)
                          .Add(labels);
  sub->dead_lettered = &metrics::BuildCounter()
                            .Name("pettube_broker_subscription_dead_lettered_total")
                            .Help("Events moved to the dead-letter queue.")
                            .Register(*registry_)
                            .Add(labels);
  index_.Add(sub->id, sub->config.filter());
  sub_by_name_[sub->config.name()] = sub->id;
  subs_[sub->id] = std::move(sub);
}

void Broker::UnregisterLocked(SubState& sub) {
  const metrics::Labels labels = {{"subscription", sub.config.name()}};
  for (const char* name :
       {"pettube_broker_subscription_delivered_total", "pettube_broker_subscription_acked_total",
        "pettube_broker_subscription_redelivered_total",
        "pettube_broker_subscription_dead_lettered_total"}) {
    auto& family = metrics::BuildCounter().Name(name).Register(*registry_);
    family.Remove(&family.Add(labels));
  }
  // And the gauges CollectMetrics set: a deleted subscription leaves no
  // stale series behind.
  for (const char* name :
       {"pettube_broker_subscription_backlog",
        "pettube_broker_subscription_oldest_unacked_age_seconds",
        "pettube_broker_subscription_in_flight", "pettube_broker_subscription_consumers",
        "pettube_broker_subscription_dead_letters"}) {
    auto& family = metrics::BuildGauge().Name(name).Register(*registry_);
    family.Remove(&family.Add(labels));
  }
  sub.expiry_timer.Cancel(*clock_);
  sub.retry_timer.Cancel(*clock_);
  index_.Remove(sub.id);
  sub_by_name_.erase(sub.config.name());
  subs_.erase(sub.id);  // destroys `sub`
}

// ----------------------------------------------------------------- publish

void Broker::Publish(std::vector<CloudEvent> events, PublishDone done, const Access& access) {
  struct State {
    std::vector<CloudEvent> events;
    std::vector<v1::PublishResult> results;
    std::vector<bool> valid;
    std::vector<std::shared_ptr<const StoredEvent>> stored;  // by index; null if not stored
    std::vector<std::vector<uint32_t>> routes;
    std::vector<std::string> dedup_keys;
    // Duplicates of events prepared in the same (not yet written) group:
    // they share that group's fate.
    std::vector<bool> duplicate_of_unwritten;
  };
  auto state = std::make_shared<State>();
  state->results.resize(events.size());
  state->valid.resize(events.size());
  bool any_valid = false;
  for (size_t i = 0; i < events.size(); ++i) {
    absl::Status s = ValidateEvent(events[i], options_.max_event_bytes);
    if (s.ok() && options_.access_policy != nullptr) {
      s = options_.access_policy->CheckPublish(access, events[i]);
    }
    state->valid[i] = s.ok();
    any_valid |= s.ok();
    if (!s.ok()) {
      *state->results[i].mutable_status() = ToProtoStatus(s);
      rejected_->Increment();
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (draining_) {
      for (auto& r : state->results) {
        if (!r.has_status())
          *r.mutable_status() = ToProtoStatus(
              absl::UnavailableError("broker is shutting down; publish to another instance"));
      }
      any_valid = false;
    }
  }
  if (!any_valid) {
    done(std::move(state->results));
    return;
  }
  size_t bytes = 0;
  for (const CloudEvent& e : events) bytes += e.ByteSizeLong();
  state->events = std::move(events);
  Committer::Op op;
  op.bytes = bytes;
  op.prepare = [this, state](BrokerStore::Batch& batch) {
    const absl::Time now = clock_->Now();
    const size_t n = state->events.size();
    state->stored.resize(n);
    state->routes.resize(n);
    state->duplicate_of_unwritten.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (!state->valid[i] || state->results[i].has_status()) continue;
      CloudEvent& e = state->events[i];
      std::string key = absl::StrCat(e.source(), absl::string_view("\0", 1), e.id());
      std::optional<uint64_t> existing;
      if (auto it = unwritten_dedup_.find(key); it != unwritten_dedup_.end()) {
        existing = it->second;
        state->duplicate_of_unwritten[i] = true;
      } else {
        auto found = store_->LookupDedup(e.source(), e.id(), now - options_.dedup_window);
        if (!found.ok()) {
          *state->results[i].mutable_status() = ToProtoStatus(found.status());
          continue;
        }
        existing = *found;
      }
      if (existing.has_value()) {
        state->results[i].set_duplicate(true);
        state->results[i].set_sequence(*existing);
        continue;
      }
      const uint64_t seq = last_seq_.load() + 1;
      last_seq_.store(seq);
      auto stored = std::make_shared<StoredEvent>();
      stored->sequence = seq;
      stored->publish_time = now;
      stored->wire = e.SerializeAsString();
      batch.PutEvent(*stored);
      batch.PutDedup(e.source(), e.id(), seq, now);
      unwritten_dedup_[key] = seq;
      state->dedup_keys.push_back(std::move(key));
      state->results[i].set_sequence(seq);
      state->stored[i] = std::move(stored);
    }
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < n; ++i) {
      if (state->stored[i] == nullptr) continue;
      index_.Match(state->events[i], &state->routes[i]);
      for (uint32_t sub : state->routes[i]) batch.Enqueue(sub, state->stored[i]->sequence);
    }
    batch.SetLastSequence(last_seq_.load());
  };
  op.done = [this, state, done = std::move(done)](const absl::Status& status) {
    for (const std::string& key : state->dedup_keys) unwritten_dedup_.erase(key);
    for (size_t i = 0; i < state->results.size(); ++i) {
      v1::PublishResult& r = state->results[i];
      if (r.has_status()) continue;
      if (!status.ok() && (state->stored[i] != nullptr || state->duplicate_of_unwritten[i])) {
        // Everything in a failed group fails, duplicates of its events too:
        // the sequence they would name was never written.
        r.set_duplicate(false);
        *r.mutable_status() = ToProtoStatus(
            absl::UnavailableError(absl::StrCat("event not stored, retry: ", status.message())));
        r.set_sequence(0);
        continue;
      }
      r.mutable_status();  // code 0: OK
      if (r.duplicate()) {
        duplicates_->Increment();
      } else {
        published_->Increment();
      }
    }
    if (status.ok()) AfterPublish(state->stored, state->routes);
    done(std::move(state->results));
  };
  committer_->Submit(std::move(op));
}

void Broker::AfterPublish(const std::vector<std::shared_ptr<const StoredEvent>>& stored,
                          const std::vector<std::vector<uint32_t>>& routes) {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_set<uint32_t> touched;
  for (size_t i = 0; i < stored.size(); ++i) {
    if (stored[i] == nullptr) continue;
    recent_.Insert(stored[i]);
    for (uint32_t id : routes[i]) {
      auto it = subs_.find(id);
      if (it == subs_.end()) continue;
      SubState& sub = *it->second;
      ++sub.backlog;
      ++sub.routed;
      touched.insert(id);
      const uint64_t seq = stored[i]->sequence;
      // A refill that already read this entry from the store moved the
      // cursor past it: never queue it twice.
      if (seq < sub.load_cursor) continue;
      if (sub.caught_up && !sub.consumers.empty() && sub.ready.size() < kMaxReadyInMemory &&
          sub.held_bytes < options_.max_subscription_bytes) {
        sub.ready.push_back({seq, HeldEvent(stored[i], &sub.held_bytes)});
        sub.outstanding.insert(seq);
        sub.load_cursor = seq + 1;
      } else {
        // Nobody is reading, or readers are behind: leave it on disk rather
        // than in memory; a refill reads it when there is room.
        sub.caught_up = false;
      }
    }
  }
  for (uint32_t id : touched) PumpLocked(*subs_[id]);
  // The first event after an empty log starts the retention clock; size
  // retention runs when the log has grown by a sixteenth of its limit.
  if (!retention_timer_.has_value() && options_.retention_max_age > absl::ZeroDuration()) {
    ScheduleRetentionLocked(clock_->Now() + options_.retention_max_age);
  }
  if (options_.retention_max_bytes > 0) {
    for (const auto& e : stored) {
      if (e != nullptr) bytes_since_retention_ += static_cast<int64_t>(e->wire.size());
    }
    if (bytes_since_retention_ > options_.retention_max_bytes / 16) {
      bytes_since_retention_ = 0;
      ScheduleRetentionLocked(clock_->Now());
    }
  }
}

// ------------------------------------------------------------- dispatching

bool Broker::RefillLocked(SubState& sub) {
  if (!sub.caught_up && !sub.refill_in_flight && !sub.refill_paused &&
      sub.ready.size() < kRefillLowWater && sub.blocked_count < kMaxBlocked &&
      sub.held_bytes < options_.max_subscription_bytes) {
    sub.refill_in_flight = true;
    reader_->Post([this, id = sub.id, from = sub.load_cursor, generation = sub.refill_generation,
                   routed = sub.routed] { RefillFromStore(id, from, generation, routed); });
  }
  return !sub.ready.empty();
}

void Broker::RefillFromStore(uint32_t sub_id, uint64_t from, uint64_t generation, uint64_t routed) {
  std::vector<uint64_t> seqs;
  const absl::Status scanned = store_->ScanQueue(sub_id, from, kRefillBatch, &seqs);
  // The events too: from the cache when another subscription just read or
  // published them, the rest in one batched read (per-event lookups at
  // dispatch time dominated draining a backlog). An event not read here is
  // read again at dispatch.
  std::vector<std::shared_ptr<const StoredEvent>> found(seqs.size());
  std::vector<uint64_t> missing;
  std::vector<size_t> missing_at;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < seqs.size(); ++i) {
      found[i] = recent_.Find(seqs[i]);
      if (found[i] == nullptr) {
        missing.push_back(seqs[i]);
        missing_at.push_back(i);
      }
    }
  }
  std::vector<std::optional<StoredEvent>> events;
  if (!missing.empty() && store_->GetEvents(missing, &events).ok()) {
    for (size_t j = 0; j < missing.size(); ++j) {
      if (events[j].has_value()) {
        found[missing_at[j]] = std::make_shared<const StoredEvent>(std::move(*events[j]));
      }
    }
  }
  absl::MutexLock lock(&mu_);
  for (size_t j : missing_at) recent_.Insert(found[j]);
  auto it = subs_.find(sub_id);
  if (it == subs_.end()) return;
  SubState& sub = *it->second;
  if (sub.refill_generation != generation) return;  // the queue moved under it
  sub.refill_in_flight = false;
  if (!scanned.ok()) {
    // Storage trouble: the next pump tries again.
    log::Warning("broker.refill_failed", {{"subscription", sub.config.name()}, {"code", scanned}});
    return;
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    // Past the budget only the sequence is kept: the event is read again
    // when it is delivered.
    if (sub.held_bytes >= options_.max_subscription_bytes) found[i].reset();
    sub.ready.push_back({seqs[i], HeldEvent(std::move(found[i]), &sub.held_bytes)});
    sub.outstanding.insert(seqs[i]);
  }
  if (!seqs.empty()) sub.load_cursor = seqs.back() + 1;
  if (seqs.size() < kRefillBatch && sub.routed == routed) sub.caught_up = true;
  PumpLocked(sub);
}

Broker::ConsumerState* Broker::NextConsumerLocked(SubState& sub) {
  const size_t n = sub.consumers.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (sub.next_consumer + i) % n;
    ConsumerState* c = consumers_[sub.consumers[at]].get();
    if (c->credits > 0) {
      sub.next_consumer = (at + 1) % n;
      return c;
    }
  }
  return nullptr;
}

void Broker::PumpLocked(SubState& sub) {
  DispatchLocked(sub);
  watchers_.Update(sub.id, sub.backlog, static_cast<int64_t>(sub.leases.size()));
}

void Broker::DispatchLocked(SubState& sub) {
  if (draining_) return;
  const absl::Time now = clock_->Now();
  const bool ordered = sub.config.ordering() == v1::ORDERING_PARTITION_KEY;
  for (;;) {
    ConsumerState* c = NextConsumerLocked(sub);
    if (c == nullptr) return;
    if (!RefillLocked(sub)) return;
    if (!sub.ready.front().event && sub.held_bytes >= options_.max_subscription_bytes) {
      // Over the byte budget: wait for settlements to free room.
      return;
    }
    ReadyEntry entry = std::move(sub.ready.front());
    sub.ready.pop_front();
    if (!entry.event) {
      auto loaded = store_->GetEvent(entry.seq);
      if (!loaded.ok()) {
        // Storage trouble: keep the entry and try again on the next pump.
        sub.ready.push_front(std::move(entry));
        return;
      }
      if (!loaded->has_value()) loaded = OwedCopyLocked(sub, entry.seq);
      if (!loaded.ok()) {
        sub.ready.push_front(std::move(entry));
        return;
      }
      if (!loaded->has_value()) {
        // Retention removed the event: nothing left to deliver.
        auto batch_seq = entry.seq;
        committer_->Submit({[id = sub.id, batch_seq](BrokerStore::Batch& b) {
                              b.Dequeue(id, batch_seq);
                              b.DeletePending(id, batch_seq);
                            },
                            nullptr, false, false});
        FinishSeqLocked(sub, entry.seq);
        continue;
      }
      entry.event = HeldEvent(std::make_shared<StoredEvent>(std::move(**loaded)), &sub.held_bytes);
    }
    if (ordered) {
      std::string key = PartitionKey(*entry.event);
      if (!key.empty()) {
        auto owner = sub.key_owner.find(key);
        if (owner != sub.key_owner.end() && owner->second != entry.seq) {
          if (sub.held_bytes >= options_.max_subscription_bytes / 2) entry.event.reset();
          sub.blocked[key].push_back(std::move(entry));
          ++sub.blocked_count;
          continue;
        }
        sub.key_owner[key] = entry.seq;
        sub.key_of[entry.seq] = std::move(key);
      }
    }
    if (sub.config.has_max_age() &&
        now - entry.event->publish_time > FromProto(sub.config.max_age())) {
      DeadLetterLocked(sub, entry.seq, "max age exceeded", entry.event.get());
      continue;
    }
    SubState::Attempt& attempt = sub.attempts[entry.seq];
    if (attempt.attempts >= sub.config.max_delivery_attempts()) {
      DeadLetterLocked(sub, entry.seq, attempt.last_error, entry.event.get());
      continue;
    }
    ++attempt.attempts;
    if (attempt.attempts == 1) {
      attempt.first_delivery = now;
    } else {
      sub.redelivered->Increment();
    }
    // Lease ids name the delivery (subscription, sequence, attempt) plus a
    // nonce, so a late settlement of an old delivery can be told apart from
    // garbage and is never credited to the redelivery.
    const LeaseKey key = ++lease_nonce_;
    std::string lease_id =
        FormatLeaseId({sub.id, entry.seq, static_cast<uint64_t>(attempt.attempts), key});
    const absl::Time deadline = now + FromProto(sub.config.ack_deadline());
    OutboundDelivery delivery;
    delivery.header.set_lease_id(std::move(lease_id));
    delivery.header.set_sequence(entry.seq);
    delivery.header.set_attempt(attempt.attempts);
    *delivery.header.mutable_publish_time() = ToProto(entry.event->publish_time);
    *delivery.header.mutable_lease_deadline() = ToProto(deadline);
    delivery.event = entry.event.get();
    sub.leases.emplace(key,
                       Lease{entry.seq, attempt.attempts, c->id, deadline, std::move(entry.event)});
    sub.deadlines.emplace(deadline, key);
    ScheduleExpiryLocked(sub);
    c->leases.insert(key);
    --c->credits;
    sub.delivered->Increment();
    c->consumer->Deliver(std::move(delivery));
  }
}

absl::StatusOr<std::optional<StoredEvent>> Broker::OwedCopyLocked(SubState& sub, uint64_t seq) {
  auto a = sub.attempts.find(seq);
  if (a == sub.attempts.end() || !a->second.owed_copy) return std::nullopt;
  return store_->GetOwedCopy(sub.id, seq);
}

void Broker::FinishSeqLocked(SubState& sub, uint64_t seq) {
  --sub.backlog;
  sub.attempts.erase(seq);
  sub.outstanding.erase(seq);
  auto key_it = sub.key_of.find(seq);
  if (key_it == sub.key_of.end()) return;
  const std::string key = std::move(key_it->second);
  sub.key_of.erase(key_it);
  sub.key_owner.erase(key);
  auto blocked = sub.blocked.find(key);
  if (blocked == sub.blocked.end()) return;
  // The key's next event goes first: it waited longest.
  sub.ready.push_front(std::move(blocked->second.front()));
  blocked->second.pop_front();
  --sub.blocked_count;
  if (blocked->second.empty()) sub.blocked.erase(blocked);
}

absl::Duration Broker::BackoffLocked(const SubState& sub, int attempts) {
  const absl::Duration min_b = FromProto(sub.config.retry_policy().min_backoff());
  const absl::Duration max_b = FromProto(sub.config.retry_policy().max_backoff());
  absl::Duration cap = min_b;
  for (int i = 1; i < attempts && cap < max_b; ++i) cap *= 2;
  cap = std::min(cap, max_b);
  // Full jitter spreads a burst of failures so redeliveries don't arrive as
  // a storm; never below the minimum.
  const double fraction = absl::Uniform<double>(rng_, 0.0, 1.0);
  return std::max(min_b, cap * fraction);
}

void Broker::RetryOrDeadLetterLocked(SubState& sub, uint64_t seq,
                                     std::optional<absl::Duration> delay, HeldEvent event) {
  SubState::Attempt& attempt = sub.attempts[seq];
  if (attempt.attempts >= sub.config.max_delivery_attempts()) {
    DeadLetterLocked(sub, seq, attempt.last_error, event.get());
    return;
  }
  storage::PendingRecord record;
  record.set_attempts(attempt.attempts);
  record.set_last_error(attempt.last_error);
  *record.mutable_first_delivery_time() = ToProto(attempt.first_delivery);
  if (attempt.owed_copy && event) {
    record.set_event(event->wire);
    *record.mutable_publish_time() = ToProto(event->publish_time);
  }
  // Attempt counts survive a restart; losing the latest one in a crash only
  // grants one more attempt, so no fsync is needed.
  attempt.persisted = true;
  committer_->Submit(
      {[id = sub.id, seq, record](BrokerStore::Batch& b) { b.PutPending(id, seq, record); },
       nullptr, false, false});
  const absl::Duration wait = delay.has_value() ? *delay : BackoffLocked(sub, attempt.attempts);
  // Within half the budget a waiting event stays in memory; past it, it is
  // read again when due (a flood of long-delayed nacks holds no events).
  if (sub.held_bytes >= options_.max_subscription_bytes / 2) event.reset();
  sub.retry.emplace(std::make_pair(clock_->Now() + wait, seq), std::move(event));
  ScheduleRetryWakeLocked(sub);
}

void Broker::ScheduleRetryWakeLocked(SubState& sub) {
  // Draining (and in ~Broker): no new timers; their work would reach a
  // committer that is going away.
  if (sub.retry.empty() || draining_) return;
  const uint32_t sub_id = sub.id;
  sub.retry_timer.Arm(*clock_, sub.retry.begin()->first.first,
                      [this, sub_id](uint64_t generation) { OnRetryDue(sub_id, generation); });
}

void Broker::OnRetryDue(uint32_t sub_id, uint64_t generation) {
  absl::MutexLock lock(&mu_);
  if (draining_) return;
  auto it = subs_.find(sub_id);
  if (it == subs_.end()) return;
  SubState& sub = *it->second;
  sub.retry_timer.Fired(generation);
  const absl::Time now = clock_->Now();
  std::vector<ReadyEntry> due;
  while (!sub.retry.empty() && sub.retry.begin()->first.first <= now) {
    due.push_back({sub.retry.begin()->first.second, std::move(sub.retry.begin()->second)});
    sub.retry.erase(sub.retry.begin());
  }
  // Oldest first, ahead of new events.
  std::sort(due.begin(), due.end(),
            [](const ReadyEntry& a, const ReadyEntry& b) { return a.seq > b.seq; });
  for (ReadyEntry& e : due) sub.ready.push_front(std::move(e));
  ScheduleRetryWakeLocked(sub);
  PumpLocked(sub);
}

void Broker::ReleaseLeaseLocked(SubState& sub, LeaseKey lease_id, const std::string& error,
                                std::optional<absl::Duration> delay) {
  auto it = sub.leases.find(lease_id);
  if (it == sub.leases.end()) return;
  const uint64_t seq = it->second.seq;
  // The event travels with the retry: no second read from the store.
  HeldEvent event = std::move(it->second.event);
  sub.deadlines.erase({it->second.deadline, lease_id});
  if (auto c = consumers_.find(it->second.consumer); c != consumers_.end()) {
    c->second->leases.erase(lease_id);
  }
  sub.leases.erase(it);
  sub.attempts[seq].last_error = error;
  RetryOrDeadLetterLocked(sub, seq, delay, std::move(event));
}

void Broker::ReturnUnsentLocked(SubState& sub, LeaseKey lease_id) {
  auto it = sub.leases.find(lease_id);
  if (it == sub.leases.end()) return;
  const uint64_t seq = it->second.seq;
  ReadyEntry entry{seq, std::move(it->second.event)};
  sub.deadlines.erase({it->second.deadline, lease_id});
  if (auto c = consumers_.find(it->second.consumer); c != consumers_.end()) {
    c->second->leases.erase(lease_id);
  }
  sub.leases.erase(it);
  SubState::Attempt& attempt = sub.attempts[seq];
  if (attempt.attempts > 0) --attempt.attempts;
  if (attempt.attempts == 0) attempt.first_delivery = absl::InfinitePast();
  // Ahead of newer events, as a redelivery would be.
  sub.ready.push_front(std::move(entry));
}

void Broker::DeadLetterLocked(SubState& sub, uint64_t seq, std::string reason,
                              std::shared_ptr<const StoredEvent> event) {
  const SubState::Attempt attempt = sub.attempts[seq];
  FinishSeqLocked(sub, seq);
  sub.dead_lettered->Increment();
  const bool keep = sub.config.dead_letter_policy().enabled();
  if (keep) ++sub.dead_count;
  if (event == nullptr) {
    auto loaded = store_->GetEvent(seq);
    if (loaded.ok() && !loaded->has_value()) loaded = OwedCopyLocked(sub, seq);
    if (loaded.ok() && loaded->has_value()) {
      event = std::make_shared<StoredEvent>(std::move(**loaded));
    }
  }
  v1::DeadLetter dead;
  dead.set_sequence(seq);
  dead.set_attempts(attempt.attempts);
  dead.set_last_error(reason.empty() ? attempt.last_error : reason);
  if (event != nullptr) {
    event->Parse(dead.mutable_event());
    *dead.mutable_publish_time() = ToProto(event->publish_time);
  }
  if (attempt.first_delivery != absl::InfinitePast()) {
    *dead.mutable_first_delivery_time() = ToProto(attempt.first_delivery);
  }
  *dead.mutable_dead_letter_time() = ToProto(clock_->Now());
  committer_->Submit({[id = sub.id, seq, keep, persisted = attempt.persisted,
                       dead = std::move(dead)](BrokerStore::Batch& b) {
                        if (keep) b.PutDeadLetter(id, dead);
                        b.Dequeue(id, seq);
                        if (persisted) b.DeletePending(id, seq);
                      },
                      nullptr, true, false});
}

void Broker::ScheduleExpiryLocked(SubState& sub) {
  if (sub.deadlines.empty() || draining_) return;
  const uint32_t sub_id = sub.id;
  sub.expiry_timer.Arm(*clock_, sub.deadlines.begin()->first,
                       [this, sub_id](uint64_t generation) { OnLeasesDue(sub_id, generation); });
}

void Broker::OnLeasesDue(uint32_t sub_id, uint64_t generation) {
  absl::MutexLock lock(&mu_);
  // Draining: a lease expiring now would submit to a committer that may be
  // gone (~Broker); the lease is released when the broker next starts.
  if (draining_) return;
  auto it = subs_.find(sub_id);
  if (it == subs_.end()) return;
  SubState& sub = *it->second;
  sub.expiry_timer.Fired(generation);
  const absl::Time now = clock_->Now();
  std::vector<LeaseKey> expired;
  for (auto d = sub.deadlines.begin(); d != sub.deadlines.end() && d->first <= now; ++d) {
    expired.push_back(d->second);
  }
  for (LeaseKey key : expired) ReleaseLeaseLocked(sub, key, "ack deadline exceeded", std::nullopt);
  ScheduleExpiryLocked(sub);
  PumpLocked(sub);
}

// -------------------------------------------------------------- consumers

absl::StatusOr<ConsumerId> Broker::Attach(const std::string& subscription, int credits,
                                          const std::string& consumer_name, Consumer* consumer,
                                          v1::Subscription* settings, const Access& access) {
  if (auto s = ValidateName(subscription, "attach.subscription"); !s.ok()) return s;
  if (credits < 1 || credits > kMaxCredits) {
    return absl::InvalidArgumentError(
        absl::StrCat("attach.max_in_flight: must be 1 to ", kMaxCredits, ", got ", credits));
  }
  absl::MutexLock lock(&mu_);
  if (draining_) return absl::UnavailableError("broker is shutting down");
  SubState* sub = FindLocked(subscription);
  if (sub == nullptr) {
    return absl::NotFoundError(absl::StrCat("subscription ", subscription, " does not exist"));
  }
  if (auto s = MayUseLocked(*sub, access); !s.ok()) return s;
  const ConsumerId id = next_consumer_id_++;
  auto state = std::make_unique<ConsumerState>();
  state->id = id;
  state->sub = sub->id;
  state->consumer = consumer;
  state->credits = credits;
  state->name = consumer_name;
  consumers_[id] = std::move(state);
  sub->consumers.push_back(id);
  *settings = DescribeLocked(*sub);
  PumpLocked(*sub);
  return id;
}

void Broker::Detach(ConsumerId id, const std::vector<std::string>& unsent) {
  absl::MutexLock lock(&mu_);
  auto it = consumers_.find(id);
  if (it == consumers_.end()) return;
  ConsumerState& c = *it->second;
  auto sub_it = subs_.find(c.sub);
  if (sub_it != subs_.end()) {
    SubState& sub = *sub_it->second;
    sub.consumers.erase(std::remove(sub.consumers.begin(), sub.consumers.end(), id),
                        sub.consumers.end());
    // Unsettled deliveries are available again at once, not after their
    // deadline; a consumer that keeps crashing on an event still exhausts
    // its attempts.
    absl::flat_hash_set<LeaseKey> never_sent;
    for (const std::string& lease_id : unsent) {
      if (auto parts = ParseLeaseId(lease_id); parts.has_value()) never_sent.insert(parts->key);
    }
    std::vector<LeaseKey> leases(c.leases.begin(), c.leases.end());
    for (LeaseKey lease_id : leases) {
      if (never_sent.contains(lease_id)) {
        ReturnUnsentLocked(sub, lease_id);
      } else {
        ReleaseLeaseLocked(sub, lease_id, "consumer disconnected", absl::ZeroDuration());
      }
    }
    consumers_.erase(it);
    PumpLocked(sub);
  } else {
    consumers_.erase(it);
  }
}

absl::Status Broker::AddCredits(ConsumerId id, int credits) {
  absl::MutexLock lock(&mu_);
  auto it = consumers_.find(id);
  if (it == consumers_.end()) return absl::NotFoundError("consumer is not attached");
  ConsumerState& c = *it->second;
  if (credits < 1 || static_cast<int64_t>(c.credits) + credits > kMaxCredits) {
    return absl::InvalidArgumentError(
        absl::StrCat("flow.credits: must be at least 1 and keep the total at most ", kMaxCredits,
                     ", got ", credits, " with ", c.credits, " unused"));
  }
  c.credits += credits;
  PumpLocked(*subs_[c.sub]);
  return absl::OkStatus();
}

void Broker::Settle(ConsumerId id, const v1::Settle& settle, bool confirm) {
  std::vector<v1::SettleResult> immediate;
  // Sequences acked, and (only when confirmations were asked for) their
  // lease ids to answer with.
  auto acked = std::make_shared<std::vector<uint64_t>>();
  auto acked_leases = std::make_shared<std::vector<std::string>>();
  auto persisted_pending = std::make_shared<std::vector<uint64_t>>();
  std::shared_ptr<SubState::QueueEpochs> epochs;
  uint64_t seek_epoch = 0, redrive_epoch = 0, floor = 0;
  uint32_t sub_id = 0;
  {
    absl::MutexLock lock(&mu_);
    auto cit = consumers_.find(id);
    if (cit == consumers_.end()) return;
    ConsumerState& c = *cit->second;
    SubState& sub = *subs_[c.sub];
    sub_id = sub.id;
    // The lease a settlement names, if this stream holds it now.
    auto check = [&](const std::string& lease_id, v1::SettleKind kind) -> std::optional<LeaseKey> {
      absl::Status s;
      const std::optional<LeaseIdParts> parts = ParseLeaseId(lease_id);
      if (lease_id.empty()) {
        s = absl::InvalidArgumentError("lease_id: must not be empty");
      } else if (!parts.has_value()) {
        s = absl::InvalidArgumentError(
            absl::StrCat("lease_id: \"", lease_id.substr(0, 100), "\" is not a lease id"));
      } else {
        auto lease = sub.leases.find(parts->key);
        if (lease != sub.leases.end() && c.leases.contains(parts->key) &&
            parts->subscription == sub.id && parts->sequence == lease->second.seq &&
            parts->attempt == static_cast<uint64_t>(lease->second.attempt)) {
          return parts->key;
        }
        s = absl::FailedPreconditionError(
            absl::StrCat("lease ", lease_id,
                         " is no longer valid (expired, settled, or held by another stream); "
                         "the event may have been redelivered"));
      }
      v1::SettleResult r;
      r.set_lease_id(lease_id);
      r.set_kind(kind);
      *r.mutable_status() = ToProtoStatus(s);
      immediate.push_back(std::move(r));
      return std::nullopt;
    };
    for (const std::string& lease_id : settle.acks()) {
      const std::optional<LeaseKey> key = check(lease_id, v1::ACK);
      if (!key.has_value()) continue;
      auto lease = sub.leases.find(*key);
      const uint64_t seq = lease->second.seq;
      sub.deadlines.erase({lease->second.deadline, *key});
      sub.leases.erase(lease);
      c.leases.erase(*key);
      if (sub.attempts[seq].persisted) persisted_pending->push_back(seq);
      FinishSeqLocked(sub, seq);
      sub.acked->Increment();
      acked->push_back(seq);
      if (confirm) acked_leases->push_back(lease_id);
    }
    for (const v1::Nack& nack : settle.nacks()) {
      const std::optional<LeaseKey> key = check(nack.lease_id(), v1::NACK);
      if (!key.has_value()) continue;
      std::optional<absl::Duration> delay;
      if (nack.has_delay()) {
        delay = FromProto(nack.delay());
        if (*delay < absl::ZeroDuration() || *delay > kMaxNackDelay) {
          delay = std::clamp(*delay, absl::ZeroDuration(), kMaxNackDelay);
        }
      }
      ReleaseLeaseLocked(sub, *key, nack.error().empty() ? "nacked" : nack.error(), delay);
      if (confirm) {
        v1::SettleResult r;
        r.set_lease_id(nack.lease_id());
        r.set_kind(v1::NACK);
        r.mutable_status();
        immediate.push_back(std::move(r));
      }
    }
    for (const std::string& lease_id : settle.releases()) {
      const std::optional<LeaseKey> key = check(lease_id, v1::NACK);
      if (!key.has_value()) continue;
      ReturnUnsentLocked(sub, *key);
      if (confirm) {
        v1::SettleResult r;
        r.set_lease_id(lease_id);
        r.set_kind(v1::NACK);
        r.mutable_status();
        immediate.push_back(std::move(r));
      }
    }
    for (const v1::Extend& ext : settle.extends()) {
      const std::optional<LeaseKey> key = check(ext.lease_id(), v1::EXTEND);
      if (!key.has_value()) continue;
      const absl::Duration d = FromProto(ext.ack_deadline());
      v1::SettleResult r;
      r.set_lease_id(ext.lease_id());
      r.set_kind(v1::EXTEND);
      if (d < kMinAckDeadline || d > kMaxAckDeadline) {
        *r.mutable_status() = ToProtoStatus(absl::InvalidArgumentError(
            absl::StrCat("extend.ack_deadline: must be 1s to 12h, got ", absl::FormatDuration(d))));
        immediate.push_back(std::move(r));
        continue;
      }
      Lease& lease = sub.leases[*key];
      sub.deadlines.erase({lease.deadline, *key});
      lease.deadline = clock_->Now() + d;
      sub.deadlines.emplace(lease.deadline, *key);
      ScheduleExpiryLocked(sub);
      if (confirm) {
        r.mutable_status();
        immediate.push_back(std::move(r));
      }
    }
    if (!acked->empty()) {
      floor = sub.AckFloor();
      epochs = sub.epochs;
      seek_epoch = epochs->seek.load();
      redrive_epoch = epochs->redrive.load();
    }
    if (!immediate.empty()) c.consumer->SettleResults(std::move(immediate));
    PumpLocked(sub);
  }
  if (acked->empty()) return;
  Committer::Op op;
  // The floor is safe to write whenever this op is written: everything
  // below it was settled before it was computed, and a dead letter among
  // them was submitted (under the lock) ahead of this op.
  op.prepare = [sub_id, acked, persisted_pending, epochs, seek_epoch, redrive_epoch,
                floor](BrokerStore::Batch& b) {
    // A seek since these acks rebuilt the queue (and dropped attempt
    // records) from the log: they no longer apply to it.
    if (epochs->seek.load() != seek_epoch) return;
    for (uint64_t seq : *persisted_pending) b.DeletePending(sub_id, seq);
    if (epochs->redrive.load() != redrive_epoch) {
      // A redrive may have re-queued sequences below this floor.
      for (uint64_t seq : *acked) b.Dequeue(sub_id, seq);
      return;
    }
    // Most acks come in order and only raise the floor: one small record
    // instead of a deletion per entry (which cost more than the delivery).
    for (uint64_t seq : *acked) {
      if (seq >= floor) b.Dequeue(sub_id, seq);
    }
    if (floor > epochs->floor_written) {
      b.SetAckFloor(sub_id, floor);
      epochs->floor_written = floor;
    }
  };
  // A confirmed ack is durable before it is confirmed. An unconfirmed one is
  // written without waiting for fsync (as JetStream 2.9 does with consumer
  // acks): it survives a process crash, and a power loss can only cause a
  // redelivery, never a lost event.
  op.sync = confirm;
  if (confirm) {
    op.done = [this, id, acked_leases](const absl::Status& status) {
      std::vector<v1::SettleResult> results;
      for (const std::string& lease : *acked_leases) {
        v1::SettleResult r;
        r.set_lease_id(lease);
        r.set_kind(v1::ACK);
        *r.mutable_status() = ToProtoStatus(status);
        results.push_back(std::move(r));
      }
      absl::MutexLock lock(&mu_);
      auto it = consumers_.find(id);
      if (it != consumers_.end()) it->second->consumer->SettleResults(std::move(results));
    };
  }
  committer_->Submit(std::move(op));
}

void Broker::CloseConsumersLocked(SubState& sub, const absl::Status& status) {
  for (ConsumerId cid : sub.consumers) {
    auto it = consumers_.find(cid);
    if (it == consumers_.end()) continue;
    it->second->consumer->Close(status);
    consumers_.erase(it);
  }
  sub.consumers.clear();
}

void Broker::Drain() {
  absl::MutexLock lock(&mu_);
  if (draining_) return;
  draining_ = true;
  for (auto& [id, sub] : subs_) {
    CloseConsumersLocked(*sub, absl::UnavailableError("broker is shutting down; reconnect"));
  }
  // Watchers end cleanly: the stats they hold are final for this instance.
  watchers_.CloseAll(absl::OkStatus());
  drained_.Notify();
}

// ---------------------------------------------------------- subscriptions

Broker::SubState* Broker::FindLocked(const std::string& name) {
  auto it = sub_by_name_.find(name);
  if (it == sub_by_name_.end()) return nullptr;
  return subs_[it->second].get();
}

absl::Status Broker::MayUseLocked(const SubState& sub, const Access& access) {
  // Unowned subscriptions (created without credentials, or before owners
  // were kept) are open to every caller with the method's scope.
  if (!access.checked || access.admin || sub.owner.empty() || sub.owner == access.identity) {
    return absl::OkStatus();
  }
  if (options_.access_policy != nullptr &&
      options_.access_policy->Grants(access, sub.config.name())) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "subscription ", sub.config.name(),
      " belongs to another workload: only its owner, a workload the publish policy grants it "
      "to, or events.admin may use it"));
}

v1::Subscription Broker::DescribeLocked(SubState& sub) {
  v1::Subscription out = sub.config;
  v1::SubscriptionStats* stats = out.mutable_stats();
  stats->set_backlog(sub.backlog);
  stats->set_in_flight(static_cast<int64_t>(sub.leases.size()));
  stats->set_delivered(static_cast<int64_t>(sub.delivered->Value()));
  stats->set_acked(static_cast<int64_t>(sub.acked->Value()));
  stats->set_redelivered(static_cast<int64_t>(sub.redelivered->Value()));
  stats->set_dead_lettered(static_cast<int64_t>(sub.dead_lettered->Value()));
  stats->set_dead_letter_count(sub.dead_count);
  stats->set_consumers(static_cast<int32_t>(sub.consumers.size()));
  if (sub.backlog > 0) {
    // The oldest owed event is the first queue entry: one seek, one read.
    std::vector<uint64_t> first;
    if (store_->ScanQueue(sub.id, 0, 1, &first).ok() && !first.empty()) {
      auto event = store_->GetEvent(first[0]);
      if (event.ok() && event->has_value()) {
        *stats->mutable_oldest_unacked_age() =
            ToProto(std::max(absl::ZeroDuration(), clock_->Now() - (*event)->publish_time));
      }
    }
  }
  return out;
}

absl::Status Broker::Backfill(const SubState& sub, const v1::StartPosition& position,
                              std::vector<uint64_t>* seqs) {
  uint64_t from = 0;
  std::optional<absl::Time> from_time;
  switch (position.position_case()) {
    case v1::StartPosition::POSITION_NOT_SET:
    case v1::StartPosition::kLatest:
      return absl::OkStatus();
    case v1::StartPosition::kEarliest:
      from = 0;
      break;
    case v1::StartPosition::kSequence:
      from = position.sequence();
      break;
    case v1::StartPosition::kTime:
      from_time = FromProto(position.time());
      break;
  }
  const bool match_all = IsMatchAll(sub.config.filter());
  return store_->ScanEvents(from, [&](const StoredEvent& e) {
    if (from_time.has_value() && e.publish_time < *from_time) return true;
    if (!match_all) {
      CloudEvent event;
      if (!e.Parse(&event) || !Matches(sub.config.filter(), event)) return true;
    }
    seqs->push_back(e.sequence);
    return true;
  });
}

absl::StatusOr<v1::Subscription> Broker::CreateSubscription(const std::string& id,
                                                            const v1::Subscription& settings,
                                                            const Access& access) {
  if (auto s = ValidateSubscriptionId(id); !s.ok()) return s;
  v1::Subscription config = settings;
  config.clear_stats();
  config.clear_create_time();
  config.set_name(absl::StrCat(kSubscriptionsPrefix, id));
  if (auto s = NormalizeSettings(config); !s.ok()) return s;
  *config.mutable_create_time() = ToProto(clock_->Now());
  const v1::StartPosition position = config.start_position();

  absl::Status result;
  v1::Subscription created;
  Committer::Op op;
  // Backfill reads the store: it must see every earlier publish committed.
  const bool backfills = position.position_case() != v1::StartPosition::kLatest &&
                         position.position_case() != v1::StartPosition::POSITION_NOT_SET;
  op.exclusive = backfills;
  op.prepare = [&](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&mu_);
    if (draining_) {
      result = absl::UnavailableError("broker is shutting down");
      return;
    }
    if (FindLocked(config.name()) != nullptr) {
      result =
          absl::AlreadyExistsError(absl::StrCat("subscription ", config.name(), " already exists"));
      return;
    }
    auto sub = std::make_unique<SubState>();
    sub->id = next_sub_id_++;
    sub->config = config;
    sub->owner = access.identity;
    // Registered here, on the committer thread, so every publish prepared
    // after this point routes to it and none before does.
    // The backfill is read before anything goes in the batch: a failed
    // read leaves no trace of the subscription (the id is not reused).
    std::vector<uint64_t> backfill;
    if (auto s = Backfill(*sub, position, &backfill); !s.ok()) {
      result = s;
      return;
    }
    storage::SubscriptionRecord record;
    record.set_internal_id(sub->id);
    *record.mutable_subscription() = config;
    record.set_owner(sub->owner);
    batch.PutSubscription(record);
    batch.SetNextSubscriptionId(next_sub_id_);
    for (uint64_t seq : backfill) batch.Enqueue(sub->id, seq);
    sub->backlog = static_cast<int64_t>(backfill.size());
    SubState* raw = sub.get();
    // A consumer may attach before the backfill is written: its refills
    // wait for the write (else one reads an empty queue, concludes it
    // caught up, and publishes move the cursor past the backfill).
    raw->refill_paused = backfills;
    RegisterLocked(std::move(sub));
    created = DescribeLocked(*raw);
  };
  op.done = [&](const absl::Status& status) {
    if (!result.ok()) return;
    absl::MutexLock lock(&mu_);
    SubState* sub = FindLocked(config.name());
    if (sub == nullptr) return;
    if (!status.ok()) {
      result = status;
      CloseConsumersLocked(*sub, absl::NotFoundError(absl::StrCat("subscription ", config.name(),
                                                                  " was not created")));
      UnregisterLocked(*sub);
      return;
    }
    sub->refill_paused = false;
    PumpLocked(*sub);
  };
  if (auto s = committer_->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
  if (!result.ok()) return result;
  return created;
}

absl::StatusOr<v1::Subscription> Broker::GetSubscription(const std::string& name) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  SubState* sub = FindLocked(name);
  if (sub == nullptr)
    return absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
  return DescribeLocked(*sub);
}

absl::StatusOr<v1::ListSubscriptionsResponse> Broker::ListSubscriptions(
    int page_size, const std::string& page_token) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) page_size = 50;
  page_size = std::min(page_size, 1000);
  if (!page_token.empty() && page_token.rfind(kSubscriptionsPrefix, 0) != 0) {
    return absl::InvalidArgumentError("page_token: not a token from a previous response");
  }
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const auto& [name, id] : sub_by_name_) {
    if (name > page_token) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  v1::ListSubscriptionsResponse out;
  for (size_t i = 0; i < names.size() && i < static_cast<size_t>(page_size); ++i) {
    *out.add_subscriptions() = DescribeLocked(*FindLocked(names[i]));
  }
  if (names.size() > static_cast<size_t>(page_size)) {
    // The token is the last name returned: stable while subscriptions come and go.
    out.set_next_page_token(names[page_size - 1]);
  }
  return out;
}

absl::StatusOr<v1::Subscription> Broker::UpdateSubscription(const v1::Subscription& update,
                                                            const std::vector<std::string>& paths,
                                                            const Access& access) {
  if (auto s = ValidateName(update.name(), "subscription.name"); !s.ok()) return s;
  if (paths.empty()) return absl::InvalidArgumentError("update_mask: must name at least one field");
  absl::Status result;
  v1::Subscription updated, pending;
  Committer::Op op;
  op.prepare = [&](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&mu_);
    SubState* sub = FindLocked(update.name());
    if (sub == nullptr) {
      result = absl::NotFoundError(absl::StrCat("subscription ", update.name(), " does not exist"));
      return;
    }
    if (auto s = MayUseLocked(*sub, access); !s.ok()) {
      result = s;
      return;
    }
    v1::Subscription merged = sub->config;
    for (const std::string& path : paths) {
      if (path == "filter") {
        *merged.mutable_filter() = update.filter();
      } else if (path == "ack_deadline") {
        merged.clear_ack_deadline();
        if (update.has_ack_deadline()) *merged.mutable_ack_deadline() = update.ack_deadline();
      } else if (path == "max_delivery_attempts") {
        merged.set_max_delivery_attempts(update.max_delivery_attempts());
      } else if (path == "retry_policy") {
        *merged.mutable_retry_policy() = update.retry_policy();
      } else if (path == "max_age") {
        merged.clear_max_age();
        if (update.has_max_age()) *merged.mutable_max_age() = update.max_age();
      } else if (path == "dead_letter_policy") {
        *merged.mutable_dead_letter_policy() = update.dead_letter_policy();
      } else if (path == "labels") {
        *merged.mutable_labels() = update.labels();
      } else {
        result = absl::InvalidArgumentError(absl::StrCat(
            "update_mask: \"", path,
            "\" cannot be changed (mutable: filter, ack_deadline, max_delivery_attempts, "
            "retry_policy, max_age, dead_letter_policy, labels)"));
        return;
      }
    }
    if (auto s = NormalizeSettings(merged); !s.ok()) {
      result = s;
      return;
    }
    storage::SubscriptionRecord record;
    record.set_internal_id(sub->id);
    *record.mutable_subscription() = merged;
    record.set_owner(sub->owner);
    batch.PutSubscription(record);
    pending = std::move(merged);
  };
  // Memory changes only once the new settings are durable.
  op.done = [&](const absl::Status& status) {
    if (!status.ok() || !result.ok()) return;
    absl::MutexLock lock(&mu_);
    SubState* sub = FindLocked(update.name());
    if (sub == nullptr) return;
    // Events already queued stay queued; the new filter routes new events.
    sub->config = pending;
    index_.Add(sub->id, pending.filter());
    updated = DescribeLocked(*sub);
  };
  if (auto s = committer_->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
  if (!result.ok()) return result;
  return updated;
}

absl::Status Broker::DeleteSubscription(const std::string& name, const Access& access) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  absl::Status result;
  Committer::Op op;
  op.prepare = [&](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&mu_);
    SubState* sub = FindLocked(name);
    if (sub == nullptr) {
      result = absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
      return;
    }
    if (auto s = MayUseLocked(*sub, access); !s.ok()) {
      result = s;
      return;
    }
    batch.DeleteSubscription(name, sub->id);
    // Publishes prepared after this in the same group no longer route to
    // it (their queue entries would outlive the deletion).
    index_.Remove(sub->id);
  };
  // Memory forgets it only once the deletion is durable: a failed write
  // leaves the subscription as it was.
  op.done = [&](const absl::Status& status) {
    if (!result.ok()) return;
    absl::MutexLock lock(&mu_);
    SubState* sub = FindLocked(name);
    if (sub == nullptr) return;
    if (!status.ok()) {
      index_.Add(sub->id, sub->config.filter());
      return;
    }
    const absl::Status deleted =
        absl::NotFoundError(absl::StrCat("subscription ", name, " was deleted"));
    CloseConsumersLocked(*sub, deleted);
    watchers_.CloseSubscription(sub->id, deleted);
    UnregisterLocked(*sub);
  };
  if (auto s = committer_->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
  return result;
}

absl::StatusOr<v1::Subscription> Broker::Seek(const std::string& name,
                                              const v1::StartPosition& position,
                                              const Access& access) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  if (position.position_case() == v1::StartPosition::POSITION_NOT_SET) {
    return absl::InvalidArgumentError("position: must be set");
  }
  absl::Status result;
  v1::Subscription described;
  Committer::Op op;
  op.exclusive = true;
  op.prepare = [&](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&mu_);
    SubState* sub = FindLocked(name);
    if (sub == nullptr) {
      result = absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
      return;
    }
    if (auto s = MayUseLocked(*sub, access); !s.ok()) {
      result = s;
      return;
    }
    // The new queue is read first: a failed read changes nothing.
    std::vector<uint64_t> backfill;
    if (auto s = Backfill(*sub, position, &backfill); !s.ok()) {
      result = s;
      return;
    }
    // Start over: in-flight leases are dropped (their late acks are
    // refused), the queue is rebuilt from the log.
    for (auto& [lease_id, lease] : sub->leases) {
      if (auto c = consumers_.find(lease.consumer); c != consumers_.end()) {
        c->second->leases.erase(lease_id);
      }
    }
    sub->leases.clear();
    sub->deadlines.clear();
    sub->expiry_timer.Cancel(*clock_);
    sub->retry_timer.Cancel(*clock_);
    sub->retry.clear();
    sub->ready.clear();
    sub->outstanding.clear();
    ++sub->epochs->seek;
    sub->epochs->floor_written = 0;  // ClearQueue drops the floor
    sub->attempts.clear();
    sub->key_owner.clear();
    sub->key_of.clear();
    sub->blocked.clear();
    sub->blocked_count = 0;
    sub->load_cursor = 0;
    sub->caught_up = false;
    ++sub->refill_generation;
    sub->refill_in_flight = false;
    // Until the rebuilt queue is written a refill would read the old one
    // and could conclude it caught up, letting publishes move the cursor
    // past the replay (as redrive, refills wait for the write).
    sub->refill_paused = true;
    batch.ClearQueue(sub->id);
    for (uint64_t seq : backfill) batch.Enqueue(sub->id, seq);
    sub->backlog = static_cast<int64_t>(backfill.size());
  };
  op.done = [&](const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    SubState* sub = FindLocked(name);
    if (sub == nullptr) return;
    sub->refill_paused = false;
    if (status.ok() && result.ok()) described = DescribeLocked(*sub);
    // Also after a failed write: refills read what the store holds.
    PumpLocked(*sub);
  };
  if (auto s = committer_->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
  if (!result.ok()) return result;
  return described;
}

absl::StatusOr<v1::ListDeadLettersResponse> Broker::ListDeadLetters(const std::string& name,
                                                                    int page_size,
                                                                    const std::string& page_token,
                                                                    const Access& access) {
  if (auto s = ValidateName(name, "subscription"); !s.ok()) return s;
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) page_size = 50;
  page_size = std::min(page_size, 1000);
  uint64_t from = 0;
  if (!page_token.empty() && !absl::SimpleAtoi(page_token, &from)) {
    return absl::InvalidArgumentError("page_token: not a token from a previous response");
  }
  uint32_t id;
  {
    absl::MutexLock lock(&mu_);
    SubState* sub = FindLocked(name);
    if (sub == nullptr)
      return absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
    if (auto s = MayUseLocked(*sub, access); !s.ok()) return s;
    id = sub->id;
  }
  // Dead-lettering is queued to the committer; wait for what is queued so
  // a listing sees every settlement made before it.
  if (auto s = committer_->SubmitAndWait({}); !s.ok()) return s;
  v1::ListDeadLettersResponse out;
  // Bounded by bytes too: a page of large events must still reach a client
  // with the default receive limit (a letter bigger than the limit comes
  // alone). Read in small chunks, so memory stays near one page.
  constexpr size_t kChunk = 16;
  size_t bytes = 64;  // the page token and framing
  for (uint64_t cursor = from;;) {
    std::vector<v1::DeadLetter> letters;
    if (auto s = store_->ScanDeadLetters(id, cursor, kChunk, &letters); !s.ok()) return s;
    for (v1::DeadLetter& letter : letters) {
      const size_t size = letter.ByteSizeLong() + 8;
      if (out.dead_letters_size() == page_size ||
          (out.dead_letters_size() > 0 && bytes + size > options_.max_response_bytes)) {
        out.set_next_page_token(absl::StrCat(letter.sequence()));
        return out;
      }
      bytes += size;
      *out.add_dead_letters() = std::move(letter);
    }
    if (letters.size() < kChunk) return out;
    cursor = out.dead_letters(out.dead_letters_size() - 1).sequence() + 1;
  }
}

absl::StatusOr<int64_t> Broker::Redrive(const std::string& name, int64_t max_events,
                                        int max_per_second, const Access& access) {
  if (auto s = ValidateName(name, "subscription"); !s.ok()) return s;
  if (max_events < 0) return absl::InvalidArgumentError("max_events: must not be negative");
  if (max_per_second < 0) return absl::InvalidArgumentError("max_per_second: must not be negative");
  if (max_per_second == 0) max_per_second = 100;
  int64_t moved = 0;
  for (;;) {
    int64_t chunk = max_per_second;
    if (max_events > 0) chunk = std::min<int64_t>(chunk, max_events - moved);
    if (chunk <= 0) break;
    absl::Status result;
    int64_t moved_now = 0;
    // Some events were re-queued at or past the cursor: refills wait for
    // the write, which they must see.
    bool paused_refills = false;
    Committer::Op op;
    // Reads the dead letters: must see every dead-lettering before it.
    op.exclusive = true;
    op.prepare = [&](BrokerStore::Batch& batch) {
      absl::MutexLock lock(&mu_);
      SubState* sub = FindLocked(name);
      if (sub == nullptr) {
        result = absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
        return;
      }
      if (auto s = MayUseLocked(*sub, access); !s.ok()) {
        result = s;
        return;
      }
      std::vector<v1::DeadLetter> letters;
      if (auto s = store_->ScanDeadLetters(sub->id, 0, chunk, &letters); !s.ok()) {
        result = s;
        return;
      }
      // Re-queued entries below the floor lower it; the settled entries
      // left between them and the old floor (the floor covered them, they
      // were never deleted) must not come back with it. Dead letters are
      // scanned in order: the first is the lowest.
      if (!letters.empty() && letters.front().sequence() < sub->epochs->floor_written) {
        batch.DequeueRange(sub->id, letters.front().sequence(), sub->epochs->floor_written);
      }
      for (v1::DeadLetter& d : letters) {
        auto event = std::make_shared<StoredEvent>();
        event->sequence = d.sequence();
        event->publish_time = FromProto(d.publish_time());
        event->wire = d.event().SerializeAsString();
        batch.DeleteDeadLetter(sub->id, d.sequence());
        // The event is owed again, whatever its age: its copy moves from
        // the dead letter to the pending record (attempts start over),
        // which retention of the log never touches.
        storage::PendingRecord owed;
        owed.set_event(event->wire);
        *owed.mutable_publish_time() = d.publish_time();
        batch.PutPending(sub->id, d.sequence(), owed);
        batch.Enqueue(sub->id, d.sequence());
        --sub->dead_count;
        ++sub->backlog;
        SubState::Attempt& attempt = sub->attempts[d.sequence()];
        attempt = SubState::Attempt();
        attempt.persisted = true;
        attempt.owed_copy = true;
        // Entries at or past the cursor are found by the next refill.
        if (d.sequence() < sub->load_cursor) {
          sub->ready.push_back({d.sequence(), HeldEvent(event, &sub->held_bytes)});
          sub->outstanding.insert(d.sequence());
        } else if (!paused_refills) {
          paused_refills = true;
          sub->refill_paused = true;
          ++sub->refill_generation;  // a refill in flight read before this
          sub->refill_in_flight = false;
          sub->caught_up = false;  // and publishes leave theirs on disk
        }
        ++moved_now;
      }
      if (!letters.empty()) {
        // Re-queued entries may lie below the floor: lower it with them.
        ++sub->epochs->redrive;
        sub->epochs->floor_written = sub->AckFloor();
        batch.SetAckFloor(sub->id, sub->epochs->floor_written);
      }
    };
    op.done = [&](const absl::Status& status) {
      absl::MutexLock lock(&mu_);
      SubState* sub = FindLocked(name);
      if (sub == nullptr) return;
      if (paused_refills) sub->refill_paused = false;
      if (status.ok()) PumpLocked(*sub);
    };
    if (auto s = committer_->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
    if (!result.ok()) return result;
    moved += moved_now;
    if (moved_now < chunk) break;  // queue empty
    // Bounded rate: the next chunk after a second, unless the broker stops.
    if (drained_.WaitForNotificationWithTimeout(absl::Seconds(1))) break;
  }
  return moved;
}

absl::StatusOr<WatchId> Broker::WatchStats(const std::string& name, StatsObserver* observer,
                                           v1::SubscriptionStats* initial) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (draining_) return absl::UnavailableError("broker is shutting down; watch another instance");
  SubState* sub = FindLocked(name);
  if (sub == nullptr) {
    return absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
  }
  *initial = DescribeLocked(*sub).stats();
  return watchers_.Add(sub->id, observer, sub->backlog, static_cast<int64_t>(sub->leases.size()));
}

void Broker::UnwatchStats(WatchId id) {
  absl::MutexLock lock(&mu_);
  watchers_.Remove(id);
}

absl::StatusOr<v1::SubscriptionStats> Broker::GetStats(const std::string& name) {
  auto sub = GetSubscription(name);
  if (!sub.ok()) return sub.status();
  return sub->stats();
}

absl::StatusOr<v1::StreamInfo> Broker::GetStreamInfo() {
  v1::StreamInfo info;
  auto first = store_->FirstSequence();
  if (!first.ok()) return first.status();
  const uint64_t last = last_seq_.load();
  info.set_first_sequence(*first);
  info.set_last_sequence(last);
  info.set_event_count(*first == 0 ? 0 : static_cast<int64_t>(last - *first + 1));
  *info.mutable_max_age() = ToProto(options_.retention_max_age);
  info.set_max_bytes(options_.retention_max_bytes);
  *info.mutable_dedup_window() = ToProto(options_.dedup_window);
  return info;
}

void Broker::ScheduleRetentionLocked(absl::Time at) {
  if (draining_) return;
  if (retention_timer_.has_value()) clock_->Cancel(*retention_timer_);
  retention_timer_ = clock_->Schedule(at, [this] { EnforceRetention(); });
}

void Broker::EnforceRetention() {
  {
    absl::MutexLock lock(&mu_);
    retention_timer_.reset();
    if (draining_) return;
  }
  const absl::Time now = clock_->Now();
  uint64_t cutoff = 0;  // delete sequences below this
  auto first = store_->FirstSequence();
  if (!first.ok() || *first == 0) return;  // empty: AfterPublish restarts the clock
  std::optional<absl::Time> oldest_kept;
  if (options_.retention_max_age > absl::ZeroDuration()) {
    // Age: every event older than max_age goes, owed or not: its retention
    // has expired.
    const absl::Time threshold = now - options_.retention_max_age;
    (void)store_->ScanEvents(*first, [&](const StoredEvent& e) {
      if (e.publish_time < threshold) {
        cutoff = e.sequence + 1;
        return true;
      }
      oldest_kept = e.publish_time;
      return false;
    });
  }
  if (options_.retention_max_bytes > 0) {
    // Size: only events no subscription still owes (below every queue's
    // first entry) may go early.
    uint64_t owed_floor = last_seq_.load() + 1;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [id, sub] : subs_) {
        std::vector<uint64_t> head;
        if (store_->ScanQueue(id, 0, 1, &head).ok() && !head.empty()) {
          owed_floor = std::min(owed_floor, head[0]);
        }
      }
    }
    auto bytes = store_->ApproximateEventBytes();
    const uint64_t count = last_seq_.load() - *first + 1;
    if (bytes.ok() && *bytes > options_.retention_max_bytes && count > 0) {
      const double per_event = static_cast<double>(*bytes) / count;
      const uint64_t excess =
          static_cast<uint64_t>((*bytes - options_.retention_max_bytes) / per_event) + 1;
      cutoff = std::max(cutoff, std::min(*first + excess, owed_floor));
    }
  }
  if (cutoff > *first) {
    const absl::Status s = committer_->SubmitAndWait(
        {[cutoff](BrokerStore::Batch& b) { b.DeleteEventsBefore(cutoff); }, nullptr, false, false});
    if (!s.ok()) log::Warning("broker.retention_failed", {{"code", s}});
  }
  absl::MutexLock lock(&mu_);
  recent_.EraseBefore(cutoff);
  if (draining_) return;
  if (oldest_kept.has_value()) {
    // Just past its expiry: at the instant itself it is not yet older than
    // max_age, and a timer set for then would find nothing to do.
    ScheduleRetentionLocked(*oldest_kept + options_.retention_max_age + absl::Nanoseconds(1));
  }
}

void Broker::CollectMetrics() {
  auto& backlog =
      metrics::BuildGauge()
          .Name("pettube_broker_subscription_backlog")
          .Help("Events matched and not yet acked or dead-lettered (autoscaling signal).")
          .Register(*registry_);
  auto& oldest = metrics::BuildGauge()
                     .Name("pettube_broker_subscription_oldest_unacked_age_seconds")
                     .Help("Age of the oldest event the subscription still owes.")
                     .Register(*registry_);
  auto& in_flight = metrics::BuildGauge()
                        .Name("pettube_broker_subscription_in_flight")
                        .Help("Deliveries leased and not yet settled.")
                        .Register(*registry_);
  auto& consumers = metrics::BuildGauge()
                        .Name("pettube_broker_subscription_consumers")
                        .Help("Consumers attached.")
                        .Register(*registry_);
  auto& dead = metrics::BuildGauge()
                   .Name("pettube_broker_subscription_dead_letters")
                   .Help("Events now in the dead-letter queue.")
                   .Register(*registry_);
  absl::MutexLock lock(&mu_);
  for (auto& [id, sub] : subs_) {
    const v1::Subscription d = DescribeLocked(*sub);
    const metrics::Labels labels = {{"subscription", sub->config.name()}};
    backlog.Add(labels).Set(static_cast<double>(d.stats().backlog()));
    oldest.Add(labels).Set(static_cast<double>(d.stats().oldest_unacked_age().seconds()) +
                           d.stats().oldest_unacked_age().nanos() / 1e9);
    in_flight.Add(labels).Set(static_cast<double>(d.stats().in_flight()));
    consumers.Add(labels).Set(static_cast<double>(d.stats().consumers()));
    dead.Add(labels).Set(static_cast<double>(d.stats().dead_letter_count()));
  }
}

}  // namespace pettube::broker
