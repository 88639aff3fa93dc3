#pragma once

#include <functional>

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace pettube::time {

// How a backoff delay is drawn below its ceiling.
enum class Jitter {
  // Exactly the ceiling: for tests and callers that want no randomness.
  kNone,
  // Uniform in [ceiling/2, ceiling]: spreads reconnects yet never waits much
  // less than planned (the clients' reconnects).
  kEqual,
  // Uniform in [0, ceiling], raised to `initial`: spreads a burst of failures
  // widest so retries don't arrive as a storm (the broker's redeliveries).
  kFull,
};

// Exponential backoff with a cap: after the n-th consecutive failure (n >= 1)
// the ceiling is min(max, initial * 2^(n-1)), and the delay is drawn below it
// by `jitter`. Expects 0 < initial <= max; a max below initial acts as initial.
struct BackoffPolicy {
  absl::Duration initial = absl::Milliseconds(100);
  absl::Duration max = absl::Seconds(5);
  Jitter jitter = Jitter::kEqual;
};

// Spelled out because C++17 has no designated initializers.
BackoffPolicy MakeBackoffPolicy(absl::Duration initial, absl::Duration max, Jitter jitter);

// min(max, initial * 2^(attempt-1)); attempts below 1 count as 1.
absl::Duration BackoffCeiling(const BackoffPolicy& policy, int attempt);

// The delay after the attempt-th consecutive failure, `fraction` in [0, 1]
// being the random draw (clamped into it). Pure: callers with their own
// random source (the broker's, under its lock) use this directly.
absl::Duration BackoffDelay(const BackoffPolicy& policy, int attempt, double fraction);

// A BackoffPolicy with its random source. Not thread-safe: each client calls it
// under its own lock.
//
//   BackoffPolicy policy;
//   policy.initial = absl::Milliseconds(50);
//   Backoff backoff(policy);
//   absl::Duration wait = backoff.Delay(++consecutive_failures_);
class Backoff {
 public:
  // Returns a fraction in [0, 1]. Tests inject a fixed one.
  using RandomFraction = std::function<double()>;

  // Draws from an absl::BitGen.
  explicit Backoff(BackoffPolicy policy);
  Backoff(BackoffPolicy policy, RandomFraction random);

  // The delay after the attempt-th consecutive failure (attempt >= 1).
  absl::Duration Delay(int attempt);

  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  RandomFraction random_;
};

}  // namespace pettube::time
