#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/credentials/authenticator.h"
#include "proto/pettube/catalog/v1/catalog.pb.h"
#include "services/media-catalog/catalog.h"
#include "services/media-catalog/media_view.h"

namespace pettube::catalog {

// One WatchMedia call: the current state of one media item (or of the
// caller's newest media), then every committed change, pushed by the
// ChangeFeed. Never blocks: a change is queued and written when the
// previous write is done. Changes of one item that arrive while a write is
// in flight are coalesced to the newest (versions only go up), so a slow
// client holds at most one pending record per item.
//
// Ends: after a single item's DELETED message (OK), when the item becomes
// invisible to a non-owner (NOT_FOUND), on cancel, or with UNAVAILABLE when
// the server drains. Deletes itself in OnDone.
class WatchMediaReactor : public grpc::ServerWriteReactor<v1::Media> {
 public:
  // `media_id` empty: all of the caller's media, the newest
  // `initial_limit` first.
  WatchMediaReactor(Catalog* catalog, const MediaView* view, auth::Caller caller,
                    std::string media_id, int initial_limit);

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnCancel() override ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  void OnChange(const StoredMedia& media) ABSL_LOCKS_EXCLUDED(mu_);
  void OnClose() ABSL_LOCKS_EXCLUDED(mu_);
  void EnqueueLocked(const StoredMedia& media) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Catalog* const catalog_;
  const MediaView* const view_;
  const auth::Caller caller_;
  const std::string media_id_;
  const int initial_limit_;

  absl::Mutex mu_;
  // Finish is held back until Start has registered with the feed, so
  // OnDone never runs before the handle is known.
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t handle_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // Finish with `final_status_` once the write in flight is done.
  bool finish_pending_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  // The newest unsent record per item, in first-arrival order.
  absl::flat_hash_map<std::string, StoredMedia> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> sent_version_ ABSL_GUARDED_BY(mu_);
  v1::Media message_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::catalog
