#include "services/broker/seeker.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/time/proto_time.h"
#include "services/broker/dispatcher.h"
#include "services/broker/event_validation.h"
#include "services/broker/filter.h"
#include "services/broker/subscriptions.h"

namespace pettube::broker {

using time::FromProto;

absl::Status Seeker::Backfill(const SubState& sub, const v1::StartPosition& position,
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
  return s_.store->ScanEvents(from, [&](const StoredEvent& e) {
    if (from_time.has_value() && e.publish_time < *from_time) return true;
    if (!match_all) {
      CloudEvent event;
      if (!e.Parse(&event) || !Matches(sub.config.filter(), event)) return true;
    }
    seqs->push_back(e.sequence);
    return true;
  });
}

absl::StatusOr<v1::Subscription> Seeker::Seek(const std::string& name,
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
    // The new queue is read first: a failed read changes nothing.
    std::vector<uint64_t> backfill;
    if (auto s = Backfill(*sub, position, &backfill); !s.ok()) {
      result = s;
      return;
    }
    // Start over: in-flight leases are dropped (their late acks are
    // refused), the queue is rebuilt from the log.
    for (const auto& [lease_id, consumer] : sub->leases.Holders()) {
      if (auto c = s_.consumers.find(consumer); c != s_.consumers.end()) {
        c->second->leases.erase(lease_id);
      }
    }
    sub->leases.Clear(*s_.clock);
    sub->retry.Clear(*s_.clock);
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
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(name);
    if (sub == nullptr) return;
    sub->refill_paused = false;
    if (status.ok() && result.ok()) described = s_.parts.subscriptions->DescribeLocked(*sub);
    // Also after a failed write: refills read what the store holds.
    s_.parts.dispatcher->PumpLocked(*sub);
  };
  if (auto s = s_.committer->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
  if (!result.ok()) return result;
  return described;
}

}  // namespace pettube::broker
