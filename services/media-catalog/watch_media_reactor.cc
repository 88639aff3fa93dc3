#include "services/media-catalog/watch_media_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/status/grpc_status.h"

namespace pettube::catalog {

WatchMediaReactor::WatchMediaReactor(Catalog* catalog, const MediaView* view, auth::Caller caller,
                                     std::string media_id, int initial_limit)
    : catalog_(catalog),
      view_(view),
      caller_(std::move(caller)),
      media_id_(std::move(media_id)),
      initial_limit_(initial_limit) {
  Start();
}

void WatchMediaReactor::Start() {
  ChangeFeed::Watch watch;
  if (media_id_.empty()) {
    watch.owner = caller_.identity;
  } else {
    watch.media_id = media_id_;
  }
  watch.on_change = [this](const StoredMedia& media) { OnChange(media); };
  watch.on_close = [this] { OnClose(); };
  // Register first, then read the current state: a change committed in
  // between arrives both ways and the version check drops the older.
  const uint64_t handle = catalog_->feed().Subscribe(std::move(watch));
  absl::Status current_status;
  std::vector<StoredMedia> current;
  if (media_id_.empty()) {
    auto newest = catalog_->Newest(caller_.identity, initial_limit_);
    if (newest.ok()) {
      current = std::move(*newest);
    } else {
      current_status = newest.status();
    }
  } else {
    auto media = catalog_->Get(caller_, absl::StrCat("media/", media_id_));
    if (media.ok()) {
      current.push_back(std::move(*media));
    } else {
      current_status = media.status();
    }
  }
  absl::MutexLock lock(&mu_);
  handle_ = handle;
  started_ = true;
  if (!current_status.ok()) return FinishLocked(status::ToGrpcStatus(current_status));
  for (const StoredMedia& media : current) EnqueueLocked(media);
  if (finish_pending_ && !writing_) return FinishLocked(final_status_);
  PumpLocked();
}

void WatchMediaReactor::OnChange(const StoredMedia& media) {
  absl::MutexLock lock(&mu_);
  if (finished_ || finish_pending_) return;
  EnqueueLocked(media);
  if (started_) PumpLocked();
}

void WatchMediaReactor::OnClose() {
  absl::MutexLock lock(&mu_);
  FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "media-catalog is shutting down; reconnect to resume"));
}

void WatchMediaReactor::EnqueueLocked(const StoredMedia& media) {
  if (auto sent = sent_version_.find(media.media_id());
      sent != sent_version_.end() && sent->second >= media.version()) {
    return;
  }
  auto [it, inserted] = pending_.try_emplace(media.media_id(), media);
  if (inserted) {
    order_.push_back(media.media_id());
  } else if (it->second.version() < media.version()) {
    it->second = media;
  }
}

void WatchMediaReactor::PumpLocked() {
  while (!writing_ && !finished_ && !finish_pending_ && !order_.empty()) {
    const std::string id = std::move(order_.front());
    order_.pop_front();
    StoredMedia media = std::move(pending_.at(id));
    pending_.erase(id);
    const bool single = !media_id_.empty();
    if (!media.deleted() && !Catalog::CanRead(caller_, media)) {
      // Not yet uploaded (all-media watch: skip it) or no longer visible.
      if (single && IsListed(media)) {
        return FinishLocked(status::ToGrpcStatus(Catalog::NoMedia(absl::StrCat("media/", id))));
      }
      continue;
    }
    sent_version_[id] = media.version();
    if (media.deleted()) {
      message_.Clear();
      message_.set_name(absl::StrCat("media/", id));
      message_.set_owner(media.owner());
      message_.set_state(v1::DELETED);
      message_.set_etag(Etag(media));
    } else {
      message_ = view_->Render(media);
    }
    writing_ = true;
    if (single && media.deleted()) {
      // The item's last message; the stream ends after it.
      finish_pending_ = true;
      final_status_ = grpc::Status::OK;
    }
    StartWrite(&message_);
  }
}

void WatchMediaReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok) {
    return FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed by the client"));
  }
  if (finish_pending_) return FinishLocked(final_status_);
  PumpLocked();
}

void WatchMediaReactor::OnCancel() {
  absl::MutexLock lock(&mu_);
  FinishLocked(grpc::Status::CANCELLED);
}

void WatchMediaReactor::FinishLocked(grpc::Status status) {
  if (finished_) return;
  if (writing_ || !started_) {
    // One Finish, after the write in flight (or Start) is done.
    if (!finish_pending_) {
      finish_pending_ = true;
      final_status_ = std::move(status);
    }
    return;
  }
  finished_ = true;
  Finish(std::move(status));
}

void WatchMediaReactor::OnDone() {
  uint64_t handle;
  {
    absl::MutexLock lock(&mu_);
    handle = handle_;
  }
  if (handle != 0) catalog_->feed().Unsubscribe(handle);
  delete this;
}

}  // namespace pettube::catalog
