#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include "services/broker/broker_store.h"

namespace pettube::broker {

// An event a subscription holds in memory (ready, leased, retrying or
// waiting on its ordering key), counted in that subscription's byte
// budget for as long as it is held: the count rises when one is made and
// falls when it is dropped, moved ones counted once. A null HeldEvent (the
// event is read from the store when needed) costs nothing.
//
// Not thread-safe: the counter belongs to the subscription and is guarded
// by the broker's lock, under which every HeldEvent is made, moved and
// destroyed.
class HeldEvent {
 public:
  HeldEvent() = default;
  HeldEvent(std::shared_ptr<const StoredEvent> event, int64_t* counter)
      : event_(std::move(event)), counter_(event_ != nullptr ? counter : nullptr) {
    if (counter_ != nullptr) *counter_ += Size();
  }
  HeldEvent(HeldEvent&& other) noexcept
      : event_(std::move(other.event_)), counter_(std::exchange(other.counter_, nullptr)) {}
  HeldEvent& operator=(HeldEvent&& other) noexcept {
    if (this != &other) {
      Release();
      event_ = std::move(other.event_);
      counter_ = std::exchange(other.counter_, nullptr);
    }
    return *this;
  }
  HeldEvent(const HeldEvent&) = delete;
  HeldEvent& operator=(const HeldEvent&) = delete;
  ~HeldEvent() { Release(); }

  // The event, shared (e.g. with a delivery on its way out).
  const std::shared_ptr<const StoredEvent>& get() const { return event_; }
  const StoredEvent* operator->() const { return event_.get(); }
  const StoredEvent& operator*() const { return *event_; }
  explicit operator bool() const { return event_ != nullptr; }
  // Lets go of the event (read again from the store when needed).
  void reset() {
    Release();
    event_.reset();
  }

 private:
  int64_t Size() const { return static_cast<int64_t>(event_->wire.size()); }
  void Release() {
    if (counter_ != nullptr && event_ != nullptr) *counter_ -= Size();
    counter_ = nullptr;
  }

  std::shared_ptr<const StoredEvent> event_;
  int64_t* counter_ = nullptr;
};

}  // namespace pettube::broker
