#include "libs/time/fake_clock.h"

#include <algorithm>

namespace pettube::time {

FakeClock::FakeClock(absl::Time start) : now_ns_(absl::ToUnixNanos(start)) {}

absl::Time FakeClock::Now() const { return absl::FromUnixNanos(now_ns_.load()); }

bool FakeClock::AwaitWithDeadline(absl::Mutex& mu, const absl::Condition& cond,
                                  absl::Time deadline) const {
  {
    // Lock order: the caller's mu, then waiters_mu_ (Advance never holds
    // waiters_mu_ while taking a caller's mutex).
    absl::MutexLock lock(&waiters_mu_);
    waiters_.push_back(&mu);
  }
  struct Wait {
    const FakeClock* clock;
    const absl::Condition* cond;
    absl::Time deadline;
    bool operator()() const { return cond->Eval() || clock->Now() >= deadline; }
  } const wait{this, &cond, deadline};
  mu.Await(absl::Condition(&wait));
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &mu));
  }
  return cond.Eval();
}

void FakeClock::Advance(absl::Duration d) {
  now_ns_.fetch_add(absl::ToInt64Nanoseconds(std::max(d, absl::ZeroDuration())));
  std::vector<absl::Mutex*> waiters;
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters = waiters_;
  }
  // Releasing a mutex re-evaluates the conditions of its waiters, which now
  // see the new time. A waiter's mutex outlives its wait, and ours is not
  // held here, so this cannot deadlock with a waiter registering.
  for (absl::Mutex* mu : waiters) {
    mu->Lock();
    mu->Unlock();
  }
}

}  // namespace pettube::time
