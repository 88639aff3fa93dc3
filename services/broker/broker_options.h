#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "services/broker/access_policy.h"
#include "services/broker/clock.h"

namespace pettube::broker {

// The broker's settings (Broker::Options), shared by its parts.
struct BrokerOptions {
  // Same source+id within this window is a duplicate.
  absl::Duration dedup_window = absl::Hours(24);
  // Largest serialized event accepted.
  size_t max_event_bytes = 1 << 20;
  // fsync before acking publishes. Off only for tests that need speed over
  // crash safety.
  bool sync = true;
  // Retention of the log (0 = unlimited).
  absl::Duration retention_max_age = absl::Hours(24 * 7);
  int64_t retention_max_bytes = 0;
  // Largest message sent to a client (a Subscribe response, a
  // ListDeadLetters page), bytes; an event bigger than this still goes,
  // alone. The default fits a default gRPC client's 4 MiB receive limit.
  size_t max_response_bytes = (4 << 20) - (64 << 10);
  // Who may publish what and use which subscriptions besides their own;
  // null: no rules beyond ownership (not owned; must outlive the broker).
  const AccessPolicy* access_policy = nullptr;
  // Bytes of events one subscription holds in memory (ready, leased,
  // retrying, waiting on a key) at most; past it loading and delivering
  // pause until settlements free room (backpressure, never an OOM).
  // Retrying and key-blocked events keep theirs only within half of it
  // (the rest are read again when due).
  int64_t max_subscription_bytes = 128 << 20;
  // Events just published or read, kept for the subscriptions' refills:
  // at most this many, of at most this many bytes (part of the memory
  // budget main.cc divides).
  size_t event_cache_events = 8192;
  int64_t event_cache_bytes = 32 << 20;
  // Time and deadlines (not owned; must outlive the broker); null: real
  // time, a TimerQueue the broker owns. Tests pass a FakeClock.
  Clock* clock = nullptr;
};

}  // namespace pettube::broker
