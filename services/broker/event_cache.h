#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "services/broker/broker_store.h"

namespace pettube::broker {

// Recently published or read events, by sequence, shared by every
// subscription: with fan-out, all subscriptions want the same events at
// about the same time, and one store read (or none, right after a publish)
// serves them all.
//
// Direct-mapped (slot = sequence modulo the slot count, a newer event
// replaces an older one) and bounded in bytes, so a backlog never moves
// into memory. When the bytes run out before the slots do (big events),
// the events cached longest ago make room: the cache keeps the newest, which
// the subscriptions' refills are about to read, not the first ones that
// fitted. Not thread-safe: the broker calls it under its lock.
class EventCache {
 public:
  // Events bigger than max_bytes / 64 are not cached.
  EventCache(size_t slots, size_t max_bytes);

  // The event with this sequence, or null.
  std::shared_ptr<const StoredEvent> Find(uint64_t sequence) const;
  // Caches `event` unless it is too big or the budget is spent.
  void Insert(std::shared_ptr<const StoredEvent> event);
  // Forgets events below `sequence` (removed from the log by retention).
  void EraseBefore(uint64_t sequence);

  size_t bytes() const { return bytes_; }

 private:
  std::shared_ptr<const StoredEvent>& Slot(uint64_t sequence) {
    return slots_[sequence % slots_.size()];
  }
  void Clear(std::shared_ptr<const StoredEvent>& slot);

  std::vector<std::shared_ptr<const StoredEvent>> slots_;
  // Sequences in the order they were cached (some since replaced or
  // erased), oldest first; at most one per slot.
  std::deque<uint64_t> inserted_;
  const size_t max_bytes_;
  const size_t max_event_bytes_;
  size_t bytes_ = 0;
};

}  // namespace pettube::broker
