#include "services/media-catalog/change_feed.h"

#include <utility>

namespace pettube::catalog {

uint64_t ChangeFeed::Subscribe(Watch watch) {
  absl::MutexLock lock(&mu_);
  if (closed_) {
    if (watch.on_close) watch.on_close();
    return 0;
  }
  const uint64_t handle = next_++;
  if (!watch.media_id.empty()) {
    by_media_[watch.media_id][handle] = true;
  } else {
    by_owner_[watch.owner][handle] = true;
  }
  watches_.emplace(handle, std::move(watch));
  return handle;
}

void ChangeFeed::Unsubscribe(uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = watches_.find(handle);
  if (it == watches_.end()) return;
  auto& index = it->second.media_id.empty() ? by_owner_ : by_media_;
  const std::string& key = it->second.media_id.empty() ? it->second.owner : it->second.media_id;
  if (auto set = index.find(key); set != index.end()) {
    set->second.erase(handle);
    if (set->second.empty()) index.erase(set);
  }
  watches_.erase(it);
}

void ChangeFeed::Publish(const StoredMedia& media) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  for (auto* index : {&by_media_, &by_owner_}) {
    const std::string& key = index == &by_media_ ? media.media_id() : media.owner();
    auto set = index->find(key);
    if (set == index->end()) continue;
    for (const auto& [handle, unused] : set->second) watches_.at(handle).on_change(media);
  }
}

void ChangeFeed::Close() {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  closed_ = true;
  for (auto& [handle, watch] : watches_) {
    if (watch.on_close) watch.on_close();
  }
}

int ChangeFeed::watchers() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(watches_.size());
}

}  // namespace pettube::catalog
