#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "services/media-catalog/media_store.h"

namespace pettube::catalog {

// Hands every committed record to the watchers interested in it: those of
// that media id and those of its owner. The catalog calls Publish right
// after each successful store write, so watchers are pushed changes, never
// poll for them.
//
// Listeners run on the publishing thread under the feed's lock: they must
// be quick and must not call the feed (a WatchMedia reactor only queues the
// record and maybe starts a write). After Unsubscribe returns, the listener
// is never called again.
//
// Thread-safe.
class ChangeFeed {
 public:
  using Listener = std::function<void(const StoredMedia&)>;
  using Closer = std::function<void()>;

  struct Watch {
    // Exactly one of the two: a media id, or an owner (all their media).
    std::string media_id;
    std::string owner;
    Listener on_change;
    // Called once when the feed closes (server drain).
    Closer on_close;
  };

  // Returns a handle for Unsubscribe; 0 when the feed is closed (on_close
  // is then called at once, before returning).
  uint64_t Subscribe(Watch watch) ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(uint64_t handle) ABSL_LOCKS_EXCLUDED(mu_);

  void Publish(const StoredMedia& media) ABSL_LOCKS_EXCLUDED(mu_);

  // Calls every on_close and refuses new watches. Idempotent.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  int watchers() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, Watch> watches_ ABSL_GUARDED_BY(mu_);
  // Handles by media id and by owner, so Publish touches only those.
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, bool>> by_media_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, bool>> by_owner_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::catalog
