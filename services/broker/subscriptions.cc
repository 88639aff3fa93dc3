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
  if (sub.backlog > 0) {
    // The oldest owed event is the first queue entry: one seek, one read.
    std::vector<uint64_t> first;
    if (s_.store->ScanQueue(sub.id, 0, 1, &first).ok() && !first.empty()) {
      auto event = s_.store->GetEvent(first[0]);
      if (event.ok() && event->has_value()) {
        *stats->mutable_oldest_unacked_age() =
            ToProto(std::max(absl::ZeroDuration(), s_.clock->Now() - (*event)->publish_time));
      }
    }
  }
  return out;
}

absl::StatusOr<v1::Subscription> Subscriptions::CreateSubscription(const std::string& id,
                                                                   const v1::Subscription& settings,
                                                                   const Access& access) {
  if (auto s = ValidateSubscriptionId(id); !s.ok()) return s;
  v1::Subscription config = settings;
  config.clear_stats();
  config.clear_create_time();
  config.set_name(absl::StrCat(kSubscriptionsPrefix, id));
  if (auto s = NormalizeSettings(config); !s.ok()) return s;
  *config.mutable_create_time() = ToProto(s_.clock->Now());
  const v1::StartPosition position = config.start_position();

  absl::Status result;
  v1::Subscription created;
  Committer::Op op;
  // Backfill reads the store: it must see every earlier publish committed.
  const bool backfills = position.position_case() != v1::StartPosition::kLatest &&
                         position.position_case() != v1::StartPosition::POSITION_NOT_SET;
  op.exclusive = backfills;
  op.prepare = [&](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&s_.mu);
    if (s_.draining) {
      result = absl::UnavailableError("broker is shutting down");
      return;
    }
    if (s_.FindLocked(config.name()) != nullptr) {
      result =
          absl::AlreadyExistsError(absl::StrCat("subscription ", config.name(), " already exists"));
      return;
    }
    auto sub = std::make_unique<SubState>();
    sub->id = s_.next_sub_id++;
    sub->config = config;
    sub->owner = access.identity;
    // Registered here, on the committer thread, so every publish prepared
    // after this point routes to it and none before does.
    // The backfill is read before anything goes in the batch: a failed
    // read leaves no trace of the subscription (the id is not reused).
    std::vector<uint64_t> backfill;
    if (auto s = s_.parts.seeker->Backfill(*sub, position, &backfill); !s.ok()) {
      result = s;
      return;
    }
    storage::SubscriptionRecord record;
    record.set_internal_id(sub->id);
    *record.mutable_subscription() = config;
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
    created = DescribeLocked(*raw);
  };
  op.done = [&](const absl::Status& status) {
    if (!result.ok()) return;
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(config.name());
    if (sub == nullptr) return;
    if (!status.ok()) {
      result = status;
      s_.parts.dispatcher->CloseConsumersLocked(
          *sub,
          absl::NotFoundError(absl::StrCat("subscription ", config.name(), " was not created")));
      UnregisterLocked(*sub);
      return;
    }
    sub->refill_paused = false;
    s_.parts.dispatcher->PumpLocked(*sub);
  };
  if (auto s = s_.committer->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
  if (!result.ok()) return result;
  return created;
}

absl::StatusOr<v1::Subscription> Subscriptions::GetSubscription(const std::string& name) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  absl::MutexLock lock(&s_.mu);
  SubState* sub = s_.FindLocked(name);
  if (sub == nullptr)
    return absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
  return DescribeLocked(*sub);
}

absl::StatusOr<v1::ListSubscriptionsResponse> Subscriptions::ListSubscriptions(
    int page_size, const std::string& page_token) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must not be negative");
  if (page_size == 0) page_size = 50;
  page_size = std::min(page_size, 1000);
  if (!page_token.empty() && page_token.rfind(kSubscriptionsPrefix, 0) != 0) {
    return absl::InvalidArgumentError("page_token: not a token from a previous response");
  }
  absl::MutexLock lock(&s_.mu);
  std::vector<std::string> names;
  for (const auto& [name, id] : s_.sub_by_name) {
    if (name > page_token) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  v1::ListSubscriptionsResponse out;
  for (size_t i = 0; i < names.size() && i < static_cast<size_t>(page_size); ++i) {
    *out.add_subscriptions() = DescribeLocked(*s_.FindLocked(names[i]));
  }
  if (names.size() > static_cast<size_t>(page_size)) {
    // The token is the last name returned: stable while subscriptions come and go.
    out.set_next_page_token(names[page_size - 1]);
  }
  return out;
}

absl::StatusOr<v1::Subscription> Subscriptions::UpdateSubscription(
    const v1::Subscription& update, const std::vector<std::string>& paths, const Access& access) {
  if (auto s = ValidateName(update.name(), "subscription.name"); !s.ok()) return s;
  if (paths.empty()) return absl::InvalidArgumentError("update_mask: must name at least one field");
  absl::Status result;
  v1::Subscription updated, pending;
  Committer::Op op;
  op.prepare = [&](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(update.name());
    if (sub == nullptr) {
      result = absl::NotFoundError(absl::StrCat("subscription ", update.name(), " does not exist"));
      return;
    }
    if (auto s = s_.MayUseLocked(*sub, access); !s.ok()) {
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
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(update.name());
    if (sub == nullptr) return;
    // Events already queued stay queued; the new filter routes new events.
    sub->config = pending;
    s_.index.Add(sub->id, pending.filter());
    updated = DescribeLocked(*sub);
  };
  if (auto s = s_.committer->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
  if (!result.ok()) return result;
  return updated;
}

absl::Status Subscriptions::DeleteSubscription(const std::string& name, const Access& access) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  absl::Status result;
  Committer::Op op;
  op.prepare = [&](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(name);
    if (sub == nullptr) {
      result = absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
      return;
    }
    if (auto s = s_.MayUseLocked(*sub, access); !s.ok()) {
      result = s;
      return;
    }
    batch.DeleteSubscription(name, sub->id);
    // Publishes prepared after this in the same group no longer route to
    // it (their queue entries would outlive the deletion).
    s_.index.Remove(sub->id);
  };
  // Memory forgets it only once the deletion is durable: a failed write
  // leaves the subscription as it was.
  op.done = [&](const absl::Status& status) {
    if (!result.ok()) return;
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(name);
    if (sub == nullptr) return;
    if (!status.ok()) {
      s_.index.Add(sub->id, sub->config.filter());
      return;
    }
    const absl::Status deleted =
        absl::NotFoundError(absl::StrCat("subscription ", name, " was deleted"));
    s_.parts.dispatcher->CloseConsumersLocked(*sub, deleted);
    s_.watchers.CloseSubscription(sub->id, deleted);
    UnregisterLocked(*sub);
  };
  if (auto s = s_.committer->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
  return result;
}

absl::StatusOr<WatchId> Subscriptions::WatchStats(const std::string& name, StatsObserver* observer,
                                                  v1::SubscriptionStats* initial) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return s;
  absl::MutexLock lock(&s_.mu);
  if (s_.draining) return absl::UnavailableError("broker is shutting down; watch another instance");
  SubState* sub = s_.FindLocked(name);
  if (sub == nullptr) {
    return absl::NotFoundError(absl::StrCat("subscription ", name, " does not exist"));
  }
  *initial = DescribeLocked(*sub).stats();
  return s_.watchers.Add(sub->id, observer, sub->backlog, static_cast<int64_t>(sub->leases.size()));
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
