#include "libs/time/backoff.h"

#include <algorithm>
#include <memory>
#include <utility>

namespace pettube::time {

BackoffPolicy MakeBackoffPolicy(absl::Duration initial, absl::Duration max, Jitter jitter) {
  BackoffPolicy policy;
  policy.initial = initial;
  policy.max = max;
  policy.jitter = jitter;
  return policy;
}

absl::Duration BackoffCeiling(const BackoffPolicy& policy, int attempt) {
  const absl::Duration max = std::max(policy.max, policy.initial);
  absl::Duration ceiling = policy.initial;
  // Doubling stops at the cap, so a huge attempt count costs a few steps.
  for (int i = 1; i < attempt && ceiling < max; ++i) ceiling *= 2;
  return std::min(ceiling, max);
}

absl::Duration BackoffDelay(const BackoffPolicy& policy, int attempt, double fraction) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  const absl::Duration ceiling = BackoffCeiling(policy, attempt);
  switch (policy.jitter) {
    case Jitter::kNone:
      return ceiling;
    case Jitter::kEqual:
      return ceiling / 2 + (ceiling / 2) * fraction;
    case Jitter::kFull:
      return std::max(policy.initial, ceiling * fraction);
  }
  return ceiling;
}

namespace {

// A BitGen of its own per Backoff: shared_ptr because RandomFraction is a
// copyable std::function.
Backoff::RandomFraction BitGenFraction() {
  auto gen = std::make_shared<absl::BitGen>();
  return [gen] { return absl::Uniform(absl::IntervalClosed, *gen, 0.0, 1.0); };
}

}  // namespace

Backoff::Backoff(BackoffPolicy policy) : Backoff(policy, BitGenFraction()) {}

Backoff::Backoff(BackoffPolicy policy, RandomFraction random)
    : policy_(policy), random_(std::move(random)) {}

absl::Duration Backoff::Delay(int attempt) { return BackoffDelay(policy_, attempt, random_()); }

}  // namespace pettube::time
