#include "services/broker/subscriptions.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/time/proto_time.h"
#include "services/broker/dispatcher.h"
#include "services/broker/event_validation.h"
#include "services/broker/seeker.h"

namespace pettube::broker {

using time::FromProto;
using time::ToProto;

void Subscriptions::RegisterLocked(std::unique_ptr<SubState> sub) {
  sub->probe = s_.probe.AddSubscription(sub->config.name());
  s_.index.Add(sub->id, sub->config.filter());
  s_.sub_by_name[sub->config.name()] = sub->id;
  s_.subs[sub->id] = std::move(sub);
}

void Subscriptions::UnregisterLocked(SubState& sub) {
  s_.probe.RemoveSubscription(sub.config.name());
  sub.leases.expiry_timer().Cancel(*s_.clock);
  sub.retry.timer().Cancel(*s_.clock);
  s_.index.Remove(sub.id);
  s_.sub_by_name.erase(sub.config.name());
  s_.subs.erase(sub.id);  // destroys `sub`
}

v1::Subscription Subscriptions::DescribeLocked(SubState& sub) {
  v1::Subscription out = sub.config;
  v1::SubscriptionStats* stats = out.mutable_stats();
  stats->set_backlog(sub.backlog);
  stats->set_in_flight(static_cast<int64_t>(sub.leases.size()));
  stats->set_delivered(static_cast<int64_t>(sub.probe.delivered->Value()));
  stats->set_acked(static_cast<int64_t>(sub.probe.acked->Value()));
  stats->set_redelivered(static_cast<int64_t>(sub.probe.redelivered->Value()));
  stats->set_dead_lettered(static_cast<int64_t>(sub.probe.dead_lettered->Value()));
  stats->set_dead_letter_count(sub.dead_count);
  stats->set_consumers(static_cast<int32_t>(sub.consumers.size()));
  return out;
}

void Subscriptions::AddOldestAge(uint32_t sub_id, v1::SubscriptionStats* stats) {
  if (stats->backlog() <= 0) return;
  // The oldest owed event is the first queue entry: one seek, one read.
  std::vector<uint64_t> first;
  if (!s_.store->ScanQueue(sub_id, 0, 1, &first).ok() || first.empty()) return;
  if (first[0] > s_.durable_seq.load()) return;  // written, not synced yet
  auto event = s_.store->GetEvent(first[0]);
  if (event.ok() && event->has_value()) {
    *stats->mutable_oldest_unacked_age() =
        ToProto(std::max(absl::ZeroDuration(), s_.clock->Now() - (*event)->publish_time));
  }
}

void Subscriptions::CreateSubscription(const std::string& id, const v1::Subscription& settings,
                                       const Access& access, Done<v1::Subscription> done) {
  if (auto s = ValidateSubscriptionId(id); !s.ok()) return done(s);
  struct State {
    v1::Subscription config;
    std::string owner;
    absl::Status result;
    v1::Subscription created;
    Done<v1::Subscription> done;
  };
  auto st = std::make_shared<State>();
  st->config = settings;
  st->config.clear_stats();
  st->config.clear_create_time();
  st->config.set_name(absl::StrCat(kSubscriptionsPrefix, id));
  if (auto s = NormalizeSettings(st->config); !s.ok()) return done(s);
  *st->config.mutable_create_time() = ToProto(s_.clock->Now());
  st->owner = access.identity;
  st->done = std::move(done);
  const v1::StartPosition& position = st->config.start_position();

  Committer::Op op;
  // Backfill reads the store: it must see every earlier publish committed.
  const bool backfills = position.position_case() != v1::StartPosition::kLatest &&
                         position.position_case() != v1::StartPosition::POSITION_NOT_SET;
  op.exclusive = backfills;
  op.prepare = [this, st, backfills](BrokerStore::Batch& batch) {
    const std::string& name = st->config.name();
    auto refused = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(s_.mu) -> absl::Status {
      if (s_.draining) return absl::UnavailableError("broker is shutting down");
      if (s_.FindLocked(name) != nullptr) {
        return absl::AlreadyExistsError(absl::StrCat("subscription ", name, " already exists"));
      }
      return absl::OkStatus();
    };
    {
      absl::MutexLock lock(&s_.mu);
      if (st->result = refused(); !st->result.ok()) return;
    }
    // The backfill is read first, off the lock (publishes wait: this op is
    // exclusive, the scan sees every earlier one), and before anything goes
    // in the batch: a failed read leaves no trace of the subscription.
    std::vector<uint64_t> backfill;
    if (backfills) {
      st->result =
          s_.parts.seeker->Backfill(st->config.filter(), st->config.start_position(), &backfill);
      if (!st->result.ok()) return;
    }
    absl::MutexLock lock(&s_.mu);
    if (st->result = refused(); !st->result.ok()) return;
    auto sub = std::make_unique<SubState>();
    sub->id = s_.next_sub_id++;
    sub->config = st->config;
    sub->owner = st->owner;
    // Registered here, on the committer thread, so every publish prepared
    // after this point routes to it and none before does.
    storage::SubscriptionRecord record;
    record.set_internal_id(sub->id);
    *record.mutable_subscription() = st->config;
    record.set_owner(sub->owner);
    batch.PutSubscription(record);
    batch.SetNextSubscriptionId(s_.next_sub_id);
    for (uint64_t seq : backfill) batch.Enqueue(sub->id, seq);
    sub->backlog = static_cast<int64_t>(backfill.size());
    SubState* raw = sub.get();
    // A consumer may attach before the backfill is written: its refills
    // wait for the write (else one reads an empty queue, concludes it
    // caught up, and publishes move the cursor past the backfill).
    raw->refill_paused = backfills;
    RegisterLocked(std::move(sub));
    st->created = DescribeLocked(*raw);
  };
  op.done = [this, st](const absl::Status& status) {
    if (st->result.ok()) {
      absl::MutexLock lock(&s_.mu);
      SubState* sub = s_.FindLocked(st->config.name());
      if (sub != nullptr && !status.ok()) {
        st->result = status;
        s_.parts.dispatcher->CloseConsumersLocked(
            *sub, absl::NotFoundError(
                      absl::StrCat("subscription ", st->config.name(), " was not created")));
        UnregisterLocked(*sub);
      } else if (sub != nullptr) {
        sub->refill_paused = false;
        s_.parts.dispatcher->PumpLocked(*sub);
      }
    }
    // Answered from here, the committer thread, once durable: no request
    // thread waited for the write.
    if (!st->result.ok()) return st->done(st->result);
    st->done(std::move(st->created));
  };
  s_.committer->Submit(std::move(op));
}

absl::StatusOr<v1::Subscription> Subscriptions::GetSubscription(const std::string& name) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  v1::Subscription out;
  uint32_t id;
  {
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(name);
    if (sub == nullptr)
      return absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
    out = DescribeLocked(*sub);
    id = sub->id;
  }
  // The store read, off the lock.
  AddOldestAge(id, out.mutable_stats());
  return out;
}

absl::StatusOr<v1::ListSubscriptionsResponse> Subscriptions::ListSubscriptions(
    int page_size, const std::string& page_token) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) page_size = 50;
  page_size = std::min(page_size, 1000);
  if (!page_token.empty() && page_token.rfind(kSubscriptionsPrefix, 0) != 0) {
    return absl::InvalidArgumentError("page_token: not a token from a previous response");
  }
  v1::ListSubscriptionsResponse out;
  std::vector<uint32_t> ids;
  {
    absl::MutexLock lock(&s_.mu);
    std::vector<std::string> names;
    for (const auto& [name, id] : s_.sub_by_name) {
      if (name > page_token) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    for (size_t i = 0; i < names.size() && i < static_cast<size_t>(page_size); ++i) {
      SubState* sub = s_.FindLocked(names[i]);
      *out.add_subscriptions() = DescribeLocked(*sub);
      ids.push_back(sub->id);
    }
    if (names.size() > static_cast<size_t>(page_size)) {
      // The token is the last name returned: stable while subscriptions come and go.
      out.set_next_page_token(names[page_size - 1]);
    }
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    AddOldestAge(ids[i], out.mutable_subscriptions(static_cast<int>(i))->mutable_stats());
  }
  return out;
}

void Subscriptions::UpdateSubscription(const v1::Subscription& update,
                                       const std::vector<std::string>& paths, const Access& access,
                                       Done<v1::Subscription> done) {
  if (auto s = ValidateName(update.name(), "subscription.name"); !s.ok()) return done(s);
  if (paths.empty()) {
    return done(absl::InvalidArgumentError("update_mask: must name at least one field"));
  }
  struct State {
    v1::Subscription update;
    std::vector<std::string> paths;
    Access access;
    absl::Status result;
    v1::Subscription pending, updated;
    uint32_t id = 0;
    Done<v1::Subscription> done;
  };
  auto st = std::make_shared<State>();
  st->update = update;
  st->paths = paths;
  st->access = access;
  st->done = std::move(done);
  Committer::Op op;
  op.prepare = [this, st](BrokerStore::Batch& batch) {
    const v1::Subscription& update = st->update;
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(update.name());
    if (sub == nullptr) {
      st->result =
          absl::NotFoundError(absl::StrCat("subscription ", update.name(), " does not exist"));
      return;
    }
    if (auto s = s_.MayUseLocked(*sub, st->access); !s.ok()) {
      st->result = s;
      return;
    }
    v1::Subscription merged = sub->config;
    for (const std::string& path : st->paths) {
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
        st->result = absl::InvalidArgumentError(absl::StrCat(
            "update_mask: \"", path,
            "\" cannot be changed (mutable: filter, ack_deadline, max_delivery_attempts, "
            "retry_policy, max_age, dead_letter_policy, labels)"));
        return;
      }
    }
    if (auto s = NormalizeSettings(merged); !s.ok()) {
      st->result = s;
      return;
    }
    storage::SubscriptionRecord record;
    record.set_internal_id(sub->id);
    *record.mutable_subscription() = merged;
    record.set_owner(sub->owner);
    batch.PutSubscription(record);
    st->pending = std::move(merged);
  };
  // Memory changes only once the new settings are durable.
  op.done = [this, st](const absl::Status& status) {
    if (st->result.ok()) st->result = status;
    bool found = false;
    if (st->result.ok()) {
      absl::MutexLock lock(&s_.mu);
      SubState* sub = s_.FindLocked(st->update.name());
      if (sub != nullptr) {
        // Events already queued stay queued; the new filter routes new events.
        sub->config = st->pending;
        s_.index.Add(sub->id, st->pending.filter());
        st->updated = DescribeLocked(*sub);
        st->id = sub->id;
        found = true;
      }
    }
    if (!st->result.ok()) return st->done(st->result);
    if (found) AddOldestAge(st->id, st->updated.mutable_stats());
    st->done(std::move(st->updated));
  };
  s_.committer->Submit(std::move(op));
}

void Subscriptions::DeleteSubscription(const std::string& name, const Access& access,
                                       std::function<void(absl::Status)> done) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return done(s);
  struct State {
    std::string name;
    Access access;
    absl::Status result;
    std::function<void(absl::Status)> done;
  };
  auto st = std::make_shared<State>();
  st->name = name;
  st->access = access;
  st->done = std::move(done);
  Committer::Op op;
  op.prepare = [this, st](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(st->name);
    if (sub == nullptr) {
      st->result = absl::NotFoundError(absl::StrCat("subscription ", st->name, " does not exist"));
      return;
    }
    if (auto s = s_.MayUseLocked(*sub, st->access); !s.ok()) {
      st->result = s;
      return;
    }
    batch.DeleteSubscription(st->name, sub->id);
    // Publishes prepared after this in the same group no longer route to
    // it (their queue entries would outlive the deletion).
    s_.index.Remove(sub->id);
  };
  // Memory forgets it only once the deletion is durable: a failed write
  // leaves the subscription as it was.
  op.done = [this, st](const absl::Status& status) {
    if (st->result.ok()) {
      absl::MutexLock lock(&s_.mu);
      SubState* sub = s_.FindLocked(st->name);
      if (sub != nullptr && !status.ok()) {
        s_.index.Add(sub->id, sub->config.filter());
      } else if (sub != nullptr) {
        const absl::Status deleted =
            absl::NotFoundError(absl::StrCat("subscription ", st->name, " was deleted"));
        s_.parts.dispatcher->CloseConsumersLocked(*sub, deleted);
        s_.watchers.CloseSubscription(sub->id, deleted);
        UnregisterLocked(*sub);
      }
      st->result = status;
    }
    st->done(st->result);
  };
  s_.committer->Submit(std::move(op));
}

absl::StatusOr<WatchId> Subscriptions::WatchStats(const std::string& name, StatsObserver* observer,
                                                  v1::SubscriptionStats* initial) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  WatchId watch;
  uint32_t id;
  {
    absl::MutexLock lock(&s_.mu);
    if (s_.draining) {
      return absl::UnavailableError("broker is shutting down; watch another instance");
    }
    SubState* sub = s_.FindLocked(name);
    if (sub == nullptr) {
      return absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
    }
    *initial = DescribeLocked(*sub).stats();
    id = sub->id;
    watch =
        s_.watchers.Add(sub->id, observer, sub->backlog, static_cast<int64_t>(sub->leases.size()));
  }
  AddOldestAge(id, initial);
  return watch;
}

void Subscriptions::UnwatchStats(WatchId id) {
  absl::MutexLock lock(&s_.mu);
  s_.watchers.Remove(id);
}

absl::StatusOr<v1::SubscriptionStats> Subscriptions::GetStats(const std::string& name) {
  auto sub = GetSubscription(name);
  if (!sub.ok()) return sub.status();
  return sub->stats();
}

}  // namespace pettube::broker
