#include "services/broker/event_cache.h"

#include <utility>

namespace pettube::broker {

EventCache::EventCache(size_t slots, size_t max_bytes)
    : slots_(slots == 0 ? 1 : slots), max_bytes_(max_bytes), max_event_bytes_(max_bytes / 64) {}

std::shared_ptr<const StoredEvent> EventCache::Find(uint64_t sequence) const {
  const auto& slot = slots_[sequence % slots_.size()];
  if (slot != nullptr && slot->sequence == sequence) return slot;
  return nullptr;
}

void EventCache::Insert(std::shared_ptr<const StoredEvent> event) {
  if (event == nullptr || event->wire.size() > max_event_bytes_) return;
  const uint64_t sequence = event->sequence;
  auto& slot = Slot(sequence);
  Clear(slot);
  // The oldest entries go first: those over the slot count (replaced by
  // now, or the oldest still cached), then as many as the bytes need.
  while (!inserted_.empty() &&
         (inserted_.size() >= slots_.size() || bytes_ + event->wire.size() > max_bytes_)) {
    const uint64_t oldest = inserted_.front();
    inserted_.pop_front();
    auto& held = Slot(oldest);
    if (held != nullptr && held->sequence == oldest) Clear(held);
  }
  if (bytes_ + event->wire.size() > max_bytes_) return;
  bytes_ += event->wire.size();
  slot = std::move(event);
  inserted_.push_back(sequence);
}

void EventCache::EraseBefore(uint64_t sequence) {
  for (auto& slot : slots_) {
    if (slot != nullptr && slot->sequence < sequence) Clear(slot);
  }
}

void EventCache::Clear(std::shared_ptr<const StoredEvent>& slot) {
  if (slot == nullptr) return;
  bytes_ -= slot->wire.size();
  slot.reset();
}

}  // namespace pettube::broker
