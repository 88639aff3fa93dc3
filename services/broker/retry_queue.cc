#include "services/broker/retry_queue.h"

#include <algorithm>

#include "libs/time/backoff.h"
#include "libs/time/proto_time.h"

namespace pettube::broker {

std::vector<ReadyEntry> RetryQueue::TakeDue(absl::Time now) {
  std::vector<ReadyEntry> due;
  while (!waiting_.empty() && waiting_.begin()->first.first <= now) {
    due.push_back({waiting_.begin()->first.second, std::move(waiting_.begin()->second)});
    waiting_.erase(waiting_.begin());
  }
  std::sort(due.begin(), due.end(),
            [](const ReadyEntry& a, const ReadyEntry& b) { return a.seq > b.seq; });
  return due;
}

void RetryQueue::Clear(Clock& clock) {
  waiting_.clear();
  timer_.Cancel(clock);
}

absl::Duration RetryBackoff(const v1::RetryPolicy& policy, int attempts, absl::BitGen& rng) {
  // Full jitter spreads a burst of failures so redeliveries don't arrive as
  // a storm; never below the minimum.
  const time::BackoffPolicy backoff =
      time::MakeBackoffPolicy(time::FromProto(policy.min_backoff()),
                              time::FromProto(policy.max_backoff()), time::Jitter::kFull);
  return time::BackoffDelay(backoff, attempts, absl::Uniform<double>(rng, 0.0, 1.0));
}

}  // namespace pettube::broker
