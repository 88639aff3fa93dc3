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

absl::StatusOr<int64_t> Redriver::Redrive(const std::string& name, int64_t max_events,
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
      std::vector<v1::DeadLetter> letters;
      if (auto s = s_.store->ScanDeadLetters(sub->id, 0, chunk, &letters); !s.ok()) {
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
      absl::MutexLock lock(&s_.mu);
      SubState* sub = s_.FindLocked(name);
      if (sub == nullptr) return;
      if (paused_refills) sub->refill_paused = false;
      if (status.ok()) s_.parts.dispatcher->PumpLocked(*sub);
    };
    if (auto s = s_.committer->SubmitAndWait(std::move(op)); !s.ok() && result.ok()) result = s;
    if (!result.ok()) return result;
    moved += moved_now;
    if (moved_now < chunk) break;  // queue empty
    // Bounded rate: the next chunk after a second, unless the broker stops.
    if (s_.drained.WaitForNotificationWithTimeout(absl::Seconds(1))) break;
  }
  return moved;
}

}  // namespace pettube::broker
