#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/broker/clock.h"

namespace pettube::broker {

// A Clock that stands still until a test moves it: Advance runs every timer
// that comes due on the way, in deadline order, on the caller's thread, with
// Now() at that timer's deadline while it runs. A test checks lease expiry,
// backoff and retention in microseconds of wall time, and after Advance
// returns every timer due by then has run.
//
// Thread-safe. Callbacks run without the clock's lock held.
class FakeClock : public Clock {
 public:
  // A fixed start, so runs are alike.
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}

  absl::Time Now() const ABSL_LOCKS_EXCLUDED(mu_) override;
  TimerId Schedule(absl::Time at, std::function<void()> callback) ABSL_LOCKS_EXCLUDED(mu_) override;
  bool Cancel(TimerId id) ABSL_LOCKS_EXCLUDED(mu_) override;

  // Moves time forward by `d` (>= 0), running timers due up to then,
  // including ones they schedule within it.
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);
  // The earliest pending deadline, if any.
  std::optional<absl::Time> NextDeadline() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t pending() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<absl::Time, TimerId>, std::function<void()>> timers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TimerId, absl::Time> deadline_of_ ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace pettube::broker
