#include "services/broker/retrier.h"

#include <utility>
#include <vector>

#include "libs/time/proto_time.h"
#include "services/broker/dead_letters.h"
#include "services/broker/dispatcher.h"

namespace pettube::broker {

using time::ToProto;

void Retrier::RetryOrDeadLetterLocked(SubState& sub, uint64_t seq,
                                      std::optional<absl::Duration> delay, HeldEvent event) {
  SubState::Attempt& attempt = sub.attempts[seq];
  if (attempt.attempts >= sub.config.max_delivery_attempts()) {
    s_.parts.dead_letters->DeadLetterLocked(sub, seq, attempt.last_error, event.get());
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
  s_.committer->Submit(
      {[id = sub.id, seq, record](BrokerStore::Batch& b) { b.PutPending(id, seq, record); },
       nullptr, false, false});
  const absl::Duration wait =
      delay.has_value() ? *delay
                        : RetryBackoff(sub.config.retry_policy(), attempt.attempts, s_.rng);
  // Within half the budget a waiting event stays in memory; past it, it is
  // read again when due (a flood of long-delayed nacks holds no events).
  if (sub.held_bytes >= s_.options.max_subscription_bytes / 2) event.reset();
  sub.retry.Add(s_.clock->Now() + wait, seq, std::move(event));
  ScheduleWakeLocked(sub);
}

void Retrier::ScheduleWakeLocked(SubState& sub) {
  // Draining (and in ~Broker): no new timers; their work would reach a
  // committer that is going away.
  const std::optional<absl::Time> due = sub.retry.EarliestDue();
  if (!due.has_value() || s_.draining) return;
  const uint32_t sub_id = sub.id;
  sub.retry.timer().Arm(*s_.clock, *due,
                        [this, sub_id](uint64_t generation) { OnRetryDue(sub_id, generation); });
}

void Retrier::OnRetryDue(uint32_t sub_id, uint64_t generation) {
  absl::MutexLock lock(&s_.mu);
  if (s_.draining) return;
  auto it = s_.subs.find(sub_id);
  if (it == s_.subs.end()) return;
  SubState& sub = *it->second;
  sub.retry.timer().Fired(generation);
  // Oldest first, ahead of new events.
  for (ReadyEntry& e : sub.retry.TakeDue(s_.clock->Now())) sub.ready.push_front(std::move(e));
  ScheduleWakeLocked(sub);
  s_.parts.dispatcher->PumpLocked(sub);
}

}  // namespace pettube::broker
