#include "services/broker/retention.h"

#include <algorithm>

#include "libs/log/log.h"

namespace pettube::broker {

void Retention::ScheduleLocked(absl::Time at) {
  if (s_.draining) return;
  if (timer_.has_value()) s_.clock->Cancel(*timer_);
  timer_ = s_.clock->Schedule(at, [this] { Enforce(); });
}

void Retention::Enforce() {
  {
    absl::MutexLock lock(&s_.mu);
    timer_.reset();
    if (s_.draining) return;
  }
  const absl::Time now = s_.clock->Now();
  uint64_t cutoff = 0;  // delete sequences below this
  auto first = s_.store->FirstSequence();
  if (!first.ok() || *first == 0) return;  // empty: AfterPublish restarts the clock
  std::optional<absl::Time> oldest_kept;
  if (s_.options.retention_max_age > absl::ZeroDuration()) {
    // Age: every event older than max_age goes, owed or not: its retention
    // has expired.
    const absl::Time threshold = now - s_.options.retention_max_age;
    (void)s_.store->ScanEvents(*first, [&](const StoredEvent& e) {
      if (e.publish_time < threshold) {
        cutoff = e.sequence + 1;
        return true;
      }
      oldest_kept = e.publish_time;
      return false;
    });
  }
  if (s_.options.retention_max_bytes > 0) {
    // Size: only events no subscription still owes (below every queue's
    // first entry) may go early.
    uint64_t owed_floor = s_.last_seq.load() + 1;
    std::vector<uint32_t> ids;
    {
      absl::MutexLock lock(&s_.mu);
      for (auto& [id, sub] : s_.subs) ids.push_back(id);
    }
    // The queue heads are read off the lock. A subscription created since
    // owes nothing below the floor read for the others (it starts at the
    // end of the log, or its backfill is an exclusive write retention's
    // own write waits behind).
    for (uint32_t id : ids) {
      std::vector<uint64_t> head;
      if (s_.store->ScanQueue(id, 0, 1, &head).ok() && !head.empty()) {
        owed_floor = std::min(owed_floor, head[0]);
      }
    }
    auto bytes = s_.store->ApproximateEventBytes();
    const uint64_t count = s_.last_seq.load() - *first + 1;
    if (bytes.ok() && *bytes > s_.options.retention_max_bytes && count > 0) {
      const double per_event = static_cast<double>(*bytes) / count;
      const uint64_t excess =
          static_cast<uint64_t>((*bytes - s_.options.retention_max_bytes) / per_event) + 1;
      cutoff = std::max(cutoff, std::min(*first + excess, owed_floor));
    }
  }
  if (cutoff > *first) {
    const absl::Status s = s_.committer->SubmitAndWait(
        {[cutoff](BrokerStore::Batch& b) { b.DeleteEventsBefore(cutoff); }, nullptr, false, false});
    if (!s.ok()) log::Warning("broker.retention_failed", {{"code", s}});
  }
  absl::MutexLock lock(&s_.mu);
  s_.recent.EraseBefore(cutoff);
  if (s_.draining) return;
  if (oldest_kept.has_value()) {
    // Just past its expiry: at the instant itself it is not yet older than
    // max_age, and a timer set for then would find nothing to do.
    ScheduleLocked(*oldest_kept + s_.options.retention_max_age + absl::Nanoseconds(1));
  }
}

void Retention::AfterPublishLocked(const std::vector<std::shared_ptr<const StoredEvent>>& stored) {
  // The first event after an empty log starts the retention clock; size
  // retention runs when the log has grown by a sixteenth of its limit.
  if (!timer_.has_value() && s_.options.retention_max_age > absl::ZeroDuration()) {
    ScheduleLocked(s_.clock->Now() + s_.options.retention_max_age);
  }
  if (s_.options.retention_max_bytes > 0) {
    for (const auto& e : stored) {
      if (e != nullptr) bytes_since_ += static_cast<int64_t>(e->wire.size());
    }
    if (bytes_since_ > s_.options.retention_max_bytes / 16) {
      bytes_since_ = 0;
      ScheduleLocked(s_.clock->Now());
    }
  }
}

void Retention::CancelLocked() {
  if (timer_.has_value()) s_.clock->Cancel(*timer_);
  timer_.reset();
}

}  // namespace pettube::broker
