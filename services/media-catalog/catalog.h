#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/auth/credentials/authenticator.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/catalog/v1/catalog.pb.h"
#include "services/media-catalog/change_feed.h"
#include "services/media-catalog/media_event.h"
#include "services/media-catalog/media_store.h"
#include "services/media-catalog/page_token.h"
#include "services/media-catalog/rendered_media.h"

namespace pettube::catalog {

// Operators' scope: read everyone's media, list by owner or all, back up.
inline constexpr char kAdminScope[] = "media.admin";

// A page of records and the token of the next one ("" at the end).
struct MediaPage {
  std::vector<StoredMedia> media;
  std::string next_page_token;
};

// The catalog's rules: the projection of events into records (exactly once
// per event id, in any order, see media_event.h) and the reads and changes
// people make, with their access rules. Every committed change is handed to
// the ChangeFeed. Calls the store and the publisher; owns neither.
//
// Access: the owner and media.admin callers see everything of an item;
// others see PUBLIC and UNLISTED items; anything else is NOT_FOUND, so ids
// are not probeable. Changing needs ownership (or media.admin):
// PERMISSION_DENIED when the caller may see the item but not change it.
//
// Thread-safe.
class Catalog {
 public:
  // Called once with the outcome of an operation that waits for the broker.
  using DoneFn = std::function<void(absl::Status)>;
  // Publishes one event; calls `done` once the broker stored it (OK) or
  // refused it. Must not block.
  using PublishFn = std::function<void(io::cloudevents::v1::CloudEvent, DoneFn done)>;

  struct Options {
    int default_page_size = 50;
    int max_page_size = 500;
    // Index entries a filtered page looks at at most.
    int max_scan = 5000;
    // In characters (code points).
    int max_title_chars = 200;
    int max_description_chars = 5000;
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  // Reads the page-token secret from the store.
  static absl::StatusOr<std::unique_ptr<Catalog>> Create(MediaStore* store, ChangeFeed* feed,
                                                         PublishFn publish, Options options);

  // Projects one event. OK when applied or already applied (a duplicate);
  // INVALID_ARGUMENT for an event that can never apply (unknown type,
  // malformed payload: the subscriber nacks it towards the dead-letter
  // queue); the store's error (UNAVAILABLE, ...) when it should be retried.
  absl::Status Apply(const io::cloudevents::v1::CloudEvent& event);

  // INVALID_ARGUMENT for a malformed name; NOT_FOUND when absent, deleted,
  // not yet uploaded, or not visible to `caller`.
  absl::StatusOr<StoredMedia> Get(const auth::Caller& caller, absl::string_view name);
  // Get into `out` (GetMedia's path, which parses into an arena).
  absl::Status Read(const auth::Caller& caller, absl::string_view name, StoredMedia* out);
  // Read without waiting for the disk: false when the record needs I/O
  // (then call Read off the request thread); errors as Read.
  absl::StatusOr<bool> ReadFromMemory(const auth::Caller& caller, absl::string_view name,
                                      StoredMedia* out);

  // See ListMediaRequest. INVALID_ARGUMENT for owner, page_size, state or
  // page_token; PERMISSION_DENIED for another owner's listing without
  // media.admin.
  absl::StatusOr<MediaPage> List(const auth::Caller& caller, const v1::ListMediaRequest& request);

  // Applies `request.update_mask` (title, description, visibility) as a
  // pettube.media.updated event: the record and the event commit together
  // (the event into the store's outbox), then the event goes to the broker
  // and leaves the outbox once stored there, so a rebuild from the broker's
  // log keeps every edit. INVALID_ARGUMENT for the mask or a value;
  // NOT_FOUND / PERMISSION_DENIED as above; ABORTED when
  // request.media.etag is set and stale.
  absl::StatusOr<StoredMedia> Update(const auth::Caller& caller,
                                     const v1::UpdateMediaRequest& request);

  // Publishes what the outbox still holds (events of updates the broker had
  // not acknowledged before a stop). Call once at start.
  absl::Status PublishOutbox();

  // Publishes pettube.media.deleted, then applies it here at once (its id
  // is then already applied when the broker delivers it back), then calls
  // `done`: OK; the access errors above or ABORTED for a stale etag (at
  // once, nothing published); UNAVAILABLE when the broker did not take the
  // event (nothing changed). `done` may run on the publisher's thread.
  void Delete(const auth::Caller& caller, const v1::DeleteMediaRequest& request, DoneFn done);

  // A consistent copy of the store under `root`/{UTC time} (media.admin
  // only: PERMISSION_DENIED otherwise).
  absl::StatusOr<v1::Backup> Backup(const auth::Caller& caller, const std::string& root);

  // The owner's newest listed media, at most `limit` (WatchMedia's first
  // messages).
  absl::StatusOr<std::vector<StoredMedia>> Newest(absl::string_view owner, int limit);

  // Whether `caller` may read `media` (listed and visible).
  static bool CanRead(const auth::Caller& caller, const StoredMedia& media);
  // The same for a rendered record.
  static bool CanRead(const auth::Caller& caller, const RenderedMedia& rendered);
  // What a caller gets for media it may not read or that is absent.
  static absl::Status NoMedia(absl::string_view name);
  // A store read's outcome as the caller may see it: NOT_FOUND (naming
  // `name`) for an absent record and for one the caller may not read, the
  // store's error otherwise.
  static absl::Status Visible(const auth::Caller& caller, absl::string_view name,
                              const absl::Status& read, const StoredMedia& media);

  ChangeFeed& feed() { return *feed_; }

 private:
  Catalog(MediaStore* store, ChangeFeed* feed, PublishFn publish, Options options,
          std::string secret);
  absl::StatusOr<StoredMedia> ReadForChange(const auth::Caller& caller, absl::string_view name,
                                            absl::string_view etag);
  // The stamp of an update following `current`'s: now, or just past its
  // newest stamp.
  absl::Time NextStamp(const StoredMedia& current) const;
  // Hands an outbox event to the broker; removes it from the outbox once
  // stored there.
  void PublishFromOutbox(io::cloudevents::v1::CloudEvent event);

  MediaStore* const store_;
  ChangeFeed* const feed_;
  const PublishFn publish_;
  const Options options_;
  const PageTokenCodec tokens_;
};

// The etag of a record version.
std::string Etag(const StoredMedia& media);

// OK when `text` is valid UTF-8 of at most `max_chars` code points, else
// INVALID_ARGUMENT naming `field`.
absl::Status CheckText(absl::string_view field, absl::string_view text, int max_chars);

}  // namespace pettube::catalog
