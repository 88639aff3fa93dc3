#include "services/broker/redriver.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/time/proto_time.h"
#include "services/broker/dispatcher.h"
#include "services/broker/event_validation.h"

namespace pettube::broker {

using time::FromProto;

void Redriver::Redrive(const std::string& name, int64_t max_events, int max_per_second,
                       const Access& access, Done done) {
  if (auto s = ValidateName(name, "subscription"); !s.ok()) return done(s);
  if (max_events < 0) return done(absl::InvalidArgumentError("max_events: must not be negative"));
  if (max_per_second < 0) {
    return done(absl::InvalidArgumentError("max_per_second: must not be negative"));
  }
  auto run = std::make_shared<Run>();
  run->name = name;
  run->access = access;
  run->max_events = max_events;
  run->per_second = max_per_second == 0 ? 100 : max_per_second;
  run->done = std::move(done);
  NextChunk(std::move(run));
}

void Redriver::NextChunk(std::shared_ptr<Run> run) {
  int64_t size = run->per_second;
  if (run->max_events > 0) size = std::min<int64_t>(size, run->max_events - run->moved);
  if (size <= 0) return run->done(run->moved);
  struct Chunk {
    int64_t size;
    absl::Status result;
    int64_t moved = 0;
    // Some events were re-queued at or past the cursor: refills wait for
    // the write, which they must see.
    bool paused_refills = false;
  };
  auto c = std::make_shared<Chunk>();
  c->size = size;
  Committer::Op op;
  // Reads the dead letters: must see every dead-lettering before it.
  op.exclusive = true;
  op.prepare = [this, run, c](BrokerStore::Batch& batch) {
    absl::MutexLock lock(&s_.mu);
    SubState* sub = s_.FindLocked(run->name);
    if (sub == nullptr) {
      c->result = absl::NotFoundError(absl::StrCat("subscription ", run->name, " does not exist"));
      return;
    }
    if (auto s = s_.MayUseLocked(*sub, run->access); !s.ok()) {
      c->result = s;
      return;
    }
    std::vector<v1::DeadLetter> letters;
    if (auto s = s_.store->ScanDeadLetters(sub->id, 0, c->size, &letters); !s.ok()) {
      c->result = s;
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
      } else if (!c->paused_refills) {
        c->paused_refills = true;
        sub->refill_paused = true;
        ++sub->refill_generation;  // a refill in flight read before this
        sub->refill_in_flight = false;
        sub->caught_up = false;  // and publishes leave theirs on disk
      }
      ++c->moved;
    }
    if (!letters.empty()) {
      // Re-queued entries may lie below the floor: lower it with them.
      ++sub->epochs->redrive;
      sub->epochs->floor_written = sub->AckFloor();
      batch.SetAckFloor(sub->id, sub->epochs->floor_written);
    }
  };
  op.done = [this, run, c](const absl::Status& status) {
    bool next = false;
    {
      absl::MutexLock lock(&s_.mu);
      SubState* sub = s_.FindLocked(run->name);
      if (sub != nullptr) {
        if (c->paused_refills) sub->refill_paused = false;
        if (status.ok()) s_.parts.dispatcher->PumpLocked(*sub);
      }
      if (c->result.ok()) c->result = status;
      if (c->result.ok()) {
        run->moved += c->moved;
        // Bounded rate: the next chunk a second later, on a timer (no
        // thread waits), unless the queue is empty or the broker stops.
        if (c->moved == c->size && !s_.draining &&
            (run->max_events == 0 || run->moved < run->max_events)) {
          next = true;
          Run* key = run.get();
          const Clock::TimerId timer =
              s_.clock->Schedule(s_.clock->Now() + absl::Seconds(1), [this, key] { OnDue(key); });
          waiting_[key] = {timer, run};
        }
      }
    }
    if (!c->result.ok()) return run->done(c->result);
    if (!next) run->done(run->moved);
  };
  s_.committer->Submit(std::move(op));
}

void Redriver::OnDue(Run* key) {
  std::shared_ptr<Run> run;
  {
    absl::MutexLock lock(&s_.mu);
    auto it = waiting_.find(key);
    if (it == waiting_.end()) return;  // drained
    run = std::move(it->second.second);
    waiting_.erase(it);
  }
  NextChunk(std::move(run));
}

std::vector<std::function<void()>> Redriver::DrainLocked() {
  std::vector<std::function<void()>> answers;
  for (auto& [key, waiting] : waiting_) {
    s_.clock->Cancel(waiting.first);
    // Returns early, with what it moved, when the broker stops.
    answers.push_back([run = std::move(waiting.second)] { run->done(run->moved); });
  }
  waiting_.clear();
  return answers;
}

}  // namespace pettube::broker
