#include "services/broker/timer_queue.h"

#include "absl/time/clock.h"

namespace pettube::broker {

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Time TimerQueue::Now() const { return absl::Now(); }

TimerQueue::TimerId TimerQueue::Schedule(absl::Time at, std::function<void()> callback) {
  absl::MutexLock lock(&mu_);
  const TimerId id = next_id_++;
  if (timers_.empty() || at < timers_.begin()->first.first) ++generation_;
  timers_.emplace(std::make_pair(at, id), std::move(callback));
  deadline_of_[id] = at;
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = deadline_of_.find(id);
  if (it == deadline_of_.end()) return false;
  timers_.erase({it->second, id});
  deadline_of_.erase(it);
  return true;
}

size_t TimerQueue::size() const {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

void TimerQueue::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (timers_.empty()) {
      const uint64_t seen = generation_;
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || generation_ != seen;
      };
      mu_.Await(absl::Condition(&changed));
      continue;
    }
    const absl::Time next = timers_.begin()->first.first;
    if (next > absl::Now()) {
      const uint64_t seen = generation_;
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || generation_ != seen;
      };
      mu_.AwaitWithDeadline(absl::Condition(&changed), next);
      continue;
    }
    auto node = timers_.extract(timers_.begin());
    deadline_of_.erase(node.key().second);
    std::function<void()> callback = std::move(node.mapped());
    mu_.Unlock();
    callback();
    mu_.Lock();
  }
}

void EarliestTimer::Arm(Clock& timers, absl::Time at,
                        std::function<void(uint64_t generation)> fire) {
  // Steady traffic adds later deadlines: the pending timer stays.
  if (id_.has_value() && at_ <= at) return;
  if (id_.has_value()) timers.Cancel(*id_);
  const uint64_t generation = ++generation_;
  id_ = timers.Schedule(at, [fire = std::move(fire), generation] { fire(generation); });
  at_ = at;
}

void EarliestTimer::Cancel(Clock& timers) {
  if (id_.has_value()) timers.Cancel(*id_);
  id_.reset();
}

}  // namespace pettube::broker
