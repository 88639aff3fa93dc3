#include "services/broker/dispatcher.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/time/proto_time.h"
#include "services/broker/dead_letters.h"
#include "services/broker/event_validation.h"
#include "services/broker/settler.h"

namespace pettube::broker {
namespace {

constexpr size_t kRefillBatch = 256;
// A refill starts when fewer entries than this are ready, so the next batch
// is read while the current one is delivered.
constexpr size_t kRefillLowWater = 256;
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

ConsumerId Dispatcher::AttachLocked(SubState& sub, int credits, const std::string& name,
                                    Consumer* consumer) {
  const ConsumerId id = next_consumer_id_++;
  auto state = std::make_unique<ConsumerState>();
  state->id = id;
  state->sub = sub.id;
  state->consumer = consumer;
  state->credits = credits;
  state->name = name;
  s_.consumers[id] = std::move(state);
  sub.consumers.push_back(id);
  return id;
}

void Dispatcher::Detach(ConsumerId id, const std::vector<std::string>& unsent) {
  absl::MutexLock lock(&s_.mu);
  auto it = s_.consumers.find(id);
  if (it == s_.consumers.end()) return;
  ConsumerState& c = *it->second;
  auto sub_it = s_.subs.find(c.sub);
  if (sub_it != s_.subs.end()) {
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
        s_.parts.settler->ReturnUnsentLocked(sub, lease_id);
      } else {
        s_.parts.settler->ReleaseLeaseLocked(sub, lease_id, "consumer disconnected",
                                             absl::ZeroDuration());
      }
    }
    s_.consumers.erase(it);
    PumpLocked(sub);
  } else {
    s_.consumers.erase(it);
  }
}

absl::Status Dispatcher::AddCredits(ConsumerId id, int credits, int max_credits) {
  absl::MutexLock lock(&s_.mu);
  auto it = s_.consumers.find(id);
  if (it == s_.consumers.end()) return absl::NotFoundError("consumer is not attached");
  ConsumerState& c = *it->second;
  if (credits < 1 || static_cast<int64_t>(c.credits) + credits > max_credits) {
    return absl::InvalidArgumentError(
        absl::StrCat("flow.credits: must be at least 1 and keep the total at most ", max_credits,
                     ", got ", credits, " with ", c.credits, " unused"));
  }
  c.credits += credits;
  PumpLocked(*s_.subs[c.sub]);
  return absl::OkStatus();
}

void Dispatcher::CloseConsumersLocked(SubState& sub, const absl::Status& status) {
  for (ConsumerId cid : sub.consumers) {
    auto it = s_.consumers.find(cid);
    if (it == s_.consumers.end()) continue;
    it->second->consumer->Close(status);
    s_.consumers.erase(it);
  }
  sub.consumers.clear();
}

bool Dispatcher::RefillLocked(SubState& sub) {
  if (!sub.caught_up && !sub.refill_in_flight && !sub.refill_paused &&
      sub.ready.size() < kRefillLowWater && sub.blocked_count < kMaxBlocked &&
      sub.held_bytes < s_.options.max_subscription_bytes) {
    sub.refill_in_flight = true;
    s_.reader->Post([this, id = sub.id, from = sub.load_cursor, generation = sub.refill_generation,
                     routed = sub.routed] { RefillFromStore(id, from, generation, routed); });
  }
  return !sub.ready.empty();
}

void Dispatcher::RefillFromStore(uint32_t sub_id, uint64_t from, uint64_t generation,
                                 uint64_t routed) {
  std::vector<uint64_t> seqs;
  const absl::Status scanned = s_.store->ScanQueue(sub_id, from, kRefillBatch, &seqs);
  // Entries above the durable sequence are publishes written and not yet
  // synced: never delivered from here. Their AfterPublish hands them over
  // once durable (or, if this refill concludes it caught up first, a later
  // refill reads them).
  const uint64_t durable = s_.durable_seq.load();
  seqs.erase(std::upper_bound(seqs.begin(), seqs.end(), durable), seqs.end());
  // The events too: from the cache when another subscription just read or
  // published them, the rest in one batched read (per-event lookups at
  // dispatch time dominated draining a backlog). An event not read here is
  // read again at dispatch.
  std::vector<std::shared_ptr<const StoredEvent>> found(seqs.size());
  std::vector<uint64_t> missing;
  std::vector<size_t> missing_at;
  {
    absl::MutexLock lock(&s_.mu);
    for (size_t i = 0; i < seqs.size(); ++i) {
      found[i] = s_.recent.Find(seqs[i]);
      if (found[i] == nullptr) {
        missing.push_back(seqs[i]);
        missing_at.push_back(i);
      }
    }
  }
  std::vector<std::optional<StoredEvent>> events;
  if (!missing.empty() && s_.store->GetEvents(missing, &events).ok()) {
    for (size_t j = 0; j < missing.size(); ++j) {
      if (events[j].has_value()) {
        found[missing_at[j]] = std::make_shared<const StoredEvent>(std::move(*events[j]));
      }
    }
  }
  absl::MutexLock lock(&s_.mu);
  for (size_t j : missing_at) s_.recent.Insert(found[j]);
  auto it = s_.subs.find(sub_id);
  if (it == s_.subs.end()) return;
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
    if (sub.held_bytes >= s_.options.max_subscription_bytes) found[i].reset();
    sub.ready.push_back({seqs[i], HeldEvent(std::move(found[i]), &sub.held_bytes)});
    sub.outstanding.insert(seqs[i]);
  }
  if (!seqs.empty()) sub.load_cursor = seqs.back() + 1;
  if (seqs.size() < kRefillBatch && sub.routed == routed) sub.caught_up = true;
  PumpLocked(sub);
}

ConsumerState* Dispatcher::NextConsumerLocked(SubState& sub) {
  const size_t n = sub.consumers.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (sub.next_consumer + i) % n;
    ConsumerState* c = s_.consumers[sub.consumers[at]].get();
    if (c->credits > 0) {
      sub.next_consumer = (at + 1) % n;
      return c;
    }
  }
  return nullptr;
}

void Dispatcher::PumpLocked(SubState& sub) {
  DispatchLocked(sub);
  s_.watchers.Update(sub.id, sub.backlog, static_cast<int64_t>(sub.leases.size()));
}

void Dispatcher::DispatchLocked(SubState& sub) {
  if (s_.draining) return;
  const absl::Time now = s_.clock->Now();
  const bool ordered = sub.config.ordering() == v1::ORDERING_PARTITION_KEY;
  for (;;) {
    ConsumerState* c = NextConsumerLocked(sub);
    if (c == nullptr) return;
    if (!RefillLocked(sub)) return;
    if (!sub.ready.front().event && sub.held_bytes >= s_.options.max_subscription_bytes) {
      // Over the byte budget: wait for settlements to free room.
      return;
    }
    ReadyEntry entry = std::move(sub.ready.front());
    sub.ready.pop_front();
    if (!entry.event) {
      auto loaded = s_.store->GetEvent(entry.seq);
      if (!loaded.ok()) {
        // Storage trouble: keep the entry and try again on the next pump.
        sub.ready.push_front(std::move(entry));
        return;
      }
      if (!loaded->has_value()) loaded = s_.parts.dead_letters->OwedCopyLocked(sub, entry.seq);
      if (!loaded.ok()) {
        sub.ready.push_front(std::move(entry));
        return;
      }
      if (!loaded->has_value()) {
        // Retention removed the event: nothing left to deliver.
        auto batch_seq = entry.seq;
        s_.committer->Submit({[id = sub.id, batch_seq](BrokerStore::Batch& b) {
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
          if (sub.held_bytes >= s_.options.max_subscription_bytes / 2) entry.event.reset();
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
      s_.parts.dead_letters->DeadLetterLocked(sub, entry.seq, "max age exceeded",
                                              entry.event.get());
      continue;
    }
    SubState::Attempt& attempt = sub.attempts[entry.seq];
    if (attempt.attempts >= sub.config.max_delivery_attempts()) {
      s_.parts.dead_letters->DeadLetterLocked(sub, entry.seq, attempt.last_error,
                                              entry.event.get());
      continue;
    }
    ++attempt.attempts;
    if (attempt.attempts == 1) {
      attempt.first_delivery = now;
    } else {
      sub.probe.redelivered->Increment();
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
    sub.leases.Add(key,
                   Lease{entry.seq, attempt.attempts, c->id, deadline, std::move(entry.event)});
    s_.parts.settler->ScheduleExpiryLocked(sub);
    c->leases.insert(key);
    --c->credits;
    sub.probe.delivered->Increment();
    c->consumer->Deliver(std::move(delivery));
  }
}

void Dispatcher::FinishSeqLocked(SubState& sub, uint64_t seq) {
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

}  // namespace pettube::broker
