#include "services/broker/stats_watchers.h"

#include <algorithm>

namespace pettube::broker {

WatchId StatsWatchers::Add(uint32_t subscription, StatsObserver* observer, int64_t backlog,
                           int64_t in_flight) {
  const WatchId id = next_id_++;
  Watched& w = by_subscription_[subscription];
  if (w.observers.empty()) {
    w.backlog = backlog;
    w.in_flight = in_flight;
  }
  w.observers.emplace_back(id, observer);
  subscription_of_[id] = subscription;
  return id;
}

void StatsWatchers::Remove(WatchId id) {
  auto it = subscription_of_.find(id);
  if (it == subscription_of_.end()) return;
  auto w = by_subscription_.find(it->second);
  subscription_of_.erase(it);
  if (w == by_subscription_.end()) return;
  auto& observers = w->second.observers;
  observers.erase(std::remove_if(observers.begin(), observers.end(),
                                 [id](const auto& o) { return o.first == id; }),
                  observers.end());
  if (observers.empty()) by_subscription_.erase(w);
}

void StatsWatchers::UpdateWatched(uint32_t subscription, int64_t backlog, int64_t in_flight) {
  auto it = by_subscription_.find(subscription);
  if (it == by_subscription_.end()) return;
  Watched& w = it->second;
  if (w.backlog == backlog && w.in_flight == in_flight) return;
  w.backlog = backlog;
  w.in_flight = in_flight;
  for (const auto& [id, observer] : w.observers) observer->StatsChanged();
}

void StatsWatchers::CloseSubscription(uint32_t subscription, const absl::Status& status) {
  auto it = by_subscription_.find(subscription);
  if (it == by_subscription_.end()) return;
  // Out of the maps first: Close may lead the observer to Remove itself
  // later, which then finds nothing.
  std::vector<std::pair<WatchId, StatsObserver*>> observers = std::move(it->second.observers);
  by_subscription_.erase(it);
  for (const auto& [id, observer] : observers) {
    subscription_of_.erase(id);
    observer->Close(status);
  }
}

void StatsWatchers::CloseAll(const absl::Status& status) {
  std::vector<uint32_t> subscriptions;
  for (const auto& [sub, w] : by_subscription_) subscriptions.push_back(sub);
  for (uint32_t sub : subscriptions) CloseSubscription(sub, status);
}

}  // namespace pettube::broker
