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

absl::Status Seeker::Backfill(const v1::Filter& filter, const v1::StartPosition& position,
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
  const bool match_all = IsMatchAll(filter);
  return s_.store->ScanEvents(from, [&](const StoredEvent& e) {
    if (from_time.has_value() && e.publish_time < *from_time) return true;
    if (!match_all) {
      CloudEvent event;
      if (!e.Parse(&event) || !Matches(filter, event)) return true;
    }
    seqs->push_back(e.sequence);
    return true;
  });
}

void Seeker::Seek(const std::string& name, const v1::StartPosition& position, const Access& access,
                  std::function<void(absl::StatusOr<v1::Subscription>)> done) {
  if (auto s = ValidateName(name, "name"); !s.ok()) return done(s);
  if (position.position_case() == v1::StartPosition::POSITION_NOT_SET) {
    return done(absl::InvalidArgumentError("position: must be set"));
  }
  struct State {
    std::string name;
    v1::StartPosition position;
    Access access;
    absl::Status result;
    v1::Subscription described;
    uint32_t id = 0;
    std::function<void(absl::StatusOr<v1::Subscription>)> done;
  };
  auto st = std::make_shared<State>();
  st->name = name;
  st->position = position;
  st->access = access;
  st->done = std::move(done);
  Committer::Op op;
  // Scans the log: must see every earlier publish committed.
  op.exclusive = true;
  op.prepare = [this, st](BrokerStore::Batch& batch) {
    v1::Filter filter;
    {
      absl::MutexLock lock(&s_.mu);
      SubState* sub = s_.FindLocked(st->name);
      if (sub == nullptr) {
        st->result =
            absl::NotFoundError(absl::StrCat("subscription ", st->name, " does not exist"));
        return;
      }
      if (auto s = s_.MayUseLocked(*sub, st->access); !s.ok()) {
        st->result = s;
        return;
      }
      filter = sub->config.filter();
      st->id = sub->id;
    }
    // The new queue is read first, off the lock (dispatch goes on; this
    // exclusive op holds back publishes and every other change, so the
    // subscription and its filter stay as read): a failed read changes
    // nothing.
    std::vector<uint64_t> backfill;
    if (auto s = Backfill(filter, st->position, &backfill); !s.ok()) {
      st->result = s;
      return;
    }
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(st->name);
    if (sub == nullptr || sub->id != st->id) {
      st->result = absl::NotFoundError(absl::StrCat("subscription ", st->name, " does not exist"));
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
  op.done = [this, st](const absl::Status& status) {
    bool described = false;
    {
      absl::MutexLock lock(&s_.mu);
      SubState* sub = s_.FindLocked(st->name);
      if (sub != nullptr) {
        sub->refill_paused = false;
        if (status.ok() && st->result.ok()) {
          st->described = s_.parts.subscriptions->DescribeLocked(*sub);
          st->id = sub->id;
          described = true;
        }
        // Also after a failed write: refills read what the store holds.
        s_.parts.dispatcher->PumpLocked(*sub);
      }
    }
    if (st->result.ok()) st->result = status;
    if (!st->result.ok()) return st->done(st->result);
    if (described) s_.parts.subscriptions->AddOldestAge(st->id, st->described.mutable_stats());
    st->done(std::move(st->described));
  };
  s_.committer->Submit(std::move(op));
}

}  // namespace pettube::broker
