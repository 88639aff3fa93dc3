#include "services/broker/settler.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/time/proto_time.h"
#include "services/broker/dispatcher.h"
#include "services/broker/event_validation.h"
#include "services/broker/retrier.h"

namespace pettube::broker {

using time::FromProto;

void Settler::Settle(ConsumerId id, const v1::Settle& settle, bool confirm) {
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
    absl::MutexLock lock(&s_.mu);
    auto cit = s_.consumers.find(id);
    if (cit == s_.consumers.end()) return;
    ConsumerState& c = *cit->second;
    SubState& sub = *s_.subs[c.sub];
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
        const Lease* lease = sub.leases.Find(parts->key);
        if (lease != nullptr && c.leases.contains(parts->key) && parts->subscription == sub.id &&
            parts->sequence == lease->seq &&
            parts->attempt == static_cast<uint64_t>(lease->attempt)) {
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
      const uint64_t seq = sub.leases.Take(*key)->seq;
      c.leases.erase(*key);
      if (sub.attempts[seq].persisted) persisted_pending->push_back(seq);
      s_.parts.dispatcher->FinishSeqLocked(sub, seq);
      sub.probe.acked->Increment();
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
      sub.leases.Extend(*key, s_.clock->Now() + d);
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
    s_.parts.dispatcher->PumpLocked(sub);
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
      absl::MutexLock lock(&s_.mu);
      auto it = s_.consumers.find(id);
      if (it != s_.consumers.end()) it->second->consumer->SettleResults(std::move(results));
    };
  }
  s_.committer->Submit(std::move(op));
}

std::optional<Lease> Settler::TakeLeaseLocked(SubState& sub, LeaseKey key) {
  std::optional<Lease> lease = sub.leases.Take(key);
  if (!lease.has_value()) return std::nullopt;
  if (auto c = s_.consumers.find(lease->consumer); c != s_.consumers.end()) {
    c->second->leases.erase(key);
  }
  return lease;
}

void Settler::ReleaseLeaseLocked(SubState& sub, LeaseKey lease_id, const std::string& error,
                                 std::optional<absl::Duration> delay) {
  std::optional<Lease> lease = TakeLeaseLocked(sub, lease_id);
  if (!lease.has_value()) return;
  sub.attempts[lease->seq].last_error = error;
  // The event travels with the retry: no second read from the store.
  s_.parts.retrier->RetryOrDeadLetterLocked(sub, lease->seq, delay, std::move(lease->event));
}

void Settler::ReturnUnsentLocked(SubState& sub, LeaseKey lease_id) {
  std::optional<Lease> lease = TakeLeaseLocked(sub, lease_id);
  if (!lease.has_value()) return;
  SubState::Attempt& attempt = sub.attempts[lease->seq];
  if (attempt.attempts > 0) --attempt.attempts;
  if (attempt.attempts == 0) attempt.first_delivery = absl::InfinitePast();
  // Ahead of newer events, as a redelivery would be.
  sub.ready.push_front({lease->seq, std::move(lease->event)});
}

void Settler::ScheduleExpiryLocked(SubState& sub) {
  // Draining (and in ~Broker): no new timers; their work would reach a
  // committer that is going away.
  const std::optional<absl::Time> earliest = sub.leases.EarliestDeadline();
  if (!earliest.has_value() || s_.draining) return;
  const uint32_t sub_id = sub.id;
  sub.leases.expiry_timer().Arm(*s_.clock, *earliest, [this, sub_id](uint64_t generation) {
    OnLeasesDue(sub_id, generation);
  });
}

void Settler::OnLeasesDue(uint32_t sub_id, uint64_t generation) {
  absl::MutexLock lock(&s_.mu);
  // Draining: a lease expiring now would submit to a committer that may be
  // gone (~Broker); the lease is released when the broker next starts.
  if (s_.draining) return;
  auto it = s_.subs.find(sub_id);
  if (it == s_.subs.end()) return;
  SubState& sub = *it->second;
  sub.leases.expiry_timer().Fired(generation);
  for (LeaseKey key : sub.leases.ExpiredBy(s_.clock->Now())) {
    ReleaseLeaseLocked(sub, key, "ack deadline exceeded", std::nullopt);
  }
  ScheduleExpiryLocked(sub);
  s_.parts.dispatcher->PumpLocked(sub);
}

}  // namespace pettube::broker
