#include "services/broker/fake_clock.h"

#include <algorithm>

namespace pettube::broker {

absl::Time FakeClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

Clock::TimerId FakeClock::Schedule(absl::Time at, std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  const TimerId id = next_id_++;
  timers_.emplace(std::make_pair(at, id), std::move(callback));
  deadline_of_[id] = at;
  return id;
}

bool FakeClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = deadline_of_.find(id);
  if (it == deadline_of_.end()) return false;
  timers_.erase({it->second, id});
  deadline_of_.erase(it);
  return true;
}

void FakeClock::Advance(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  const absl::Time target = now_ + std::max(d, absl::ZeroDuration());
  while (!timers_.empty() && timers_.begin()->first.first <= target) {
    auto node = timers_.extract(timers_.begin());
    deadline_of_.erase(node.key().second);
    now_ = std::max(now_, node.key().first);
    std::function<void()> callback = std::move(node.mapped());
    mu_.Unlock();
    callback();
    mu_.Lock();
  }
  now_ = target;
}

std::optional<absl::Time> FakeClock::NextDeadline() const {
  absl::MutexLock lock(&mu_);
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->first.first;
}

size_t FakeClock::pending() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

}  // namespace pettube::broker
