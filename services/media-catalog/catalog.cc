#include "services/media-catalog/catalog.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/broker_client/event_builder.h"
#include "libs/log/log.h"
#include "libs/time/proto_time.h"

namespace pettube::catalog {
namespace {

// Optimistic write retries when a concurrent write to the same item won.
constexpr int kMaxWriteAttempts = 16;

bool IsAdmin(const auth::Caller& caller) { return caller.HasScope(kAdminScope); }

bool IsOwnerId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string Etag(const StoredMedia& media) { return absl::StrCat("v", media.version()); }

absl::Status CheckText(absl::string_view field, absl::string_view text, int max_chars) {
  int chars = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    int len = 0;
    uint32_t cp = 0;
    if (*p < 0x80) {
      len = 1;
      cp = *p;
    } else if ((*p & 0xE0) == 0xC0) {
      len = 2;
      cp = *p & 0x1F;
    } else if ((*p & 0xF0) == 0xE0) {
      len = 3;
      cp = *p & 0x0F;
    } else if ((*p & 0xF8) == 0xF0) {
      len = 4;
      cp = *p & 0x07;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": not valid UTF-8 (bad lead byte at offset ",
                       p - reinterpret_cast<const unsigned char*>(text.data()), ")"));
    }
    if (end - p < len) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8 (truncated)"));
    }
    for (int i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": not valid UTF-8 (bad continuation)"));
      }
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    const bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": not valid UTF-8 (overlong, surrogate or out of range)"));
    }
    p += len;
    if (++chars > max_chars) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": at most ", max_chars, " characters, got more"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Catalog>> Catalog::Create(MediaStore* store, ChangeFeed* feed,
                                                         PublishFn publish, Options options) {
  auto secret = store->Secret();
  if (!secret.ok()) return secret.status();
  return std::unique_ptr<Catalog>(
      new Catalog(store, feed, std::move(publish), std::move(options), std::move(*secret)));
}

Catalog::Catalog(MediaStore* store, ChangeFeed* feed, PublishFn publish, Options options,
                 std::string secret)
    : store_(store),
      feed_(feed),
      publish_(std::move(publish)),
      options_(std::move(options)),
      tokens_(std::move(secret)) {}

namespace {

bool MayRead(const auth::Caller& caller, bool listed, absl::string_view owner,
             v1::Visibility visibility) {
  if (!listed) return false;
  if (owner == caller.identity || IsAdmin(caller)) return true;
  return visibility == v1::PUBLIC || visibility == v1::UNLISTED;
}

}  // namespace

bool Catalog::CanRead(const auth::Caller& caller, const StoredMedia& media) {
  return MayRead(caller, IsListed(media), media.owner(), media.visibility());
}

bool Catalog::CanRead(const auth::Caller& caller, const RenderedMedia& rendered) {
  return MayRead(caller, rendered.listed, rendered.owner, rendered.visibility);
}

absl::Status Catalog::NoMedia(absl::string_view name) {
  return absl::NotFoundError(absl::StrCat("name: no media \"", name, "\""));
}

absl::Status Catalog::Apply(const io::cloudevents::v1::CloudEvent& event) {
  auto decoded = DecodeEvent(event);
  if (!decoded.ok()) return decoded.status();
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto applied = store_->IsApplied(decoded->key);
    if (!applied.ok()) return applied.status();
    if (*applied) return absl::OkStatus();  // a redelivery: already in the record
    StoredMedia current;
    if (auto got = store_->Get(decoded->media_id); got.ok()) {
      current = std::move(*got);
    } else if (absl::IsNotFound(got.status())) {
      current.set_media_id(decoded->media_id);
    } else {
      return got.status();
    }
    StoredMedia next = current;
    if (!MergeEvent(*decoded, &next)) {
      absl::Status s = store_->MarkApplied(decoded->media_id, decoded->key);
      return absl::IsAlreadyExists(s) ? absl::OkStatus() : s;
    }
    next.set_version(current.version() + 1);
    *next.mutable_update_time() = time::ToProto(options_.now());
    absl::Status s = store_->Write(next, current.version(), decoded->key);
    if (s.ok()) {
      feed_->Publish(next);
      return absl::OkStatus();
    }
    if (absl::IsAlreadyExists(s)) return absl::OkStatus();
    if (!absl::IsAborted(s)) return s;
  }
  return absl::AbortedError(absl::StrCat("media/", decoded->media_id, ": gave up after ",
                                         kMaxWriteAttempts, " conflicting writes; retry"));
}

absl::StatusOr<StoredMedia> Catalog::Get(const auth::Caller& caller, absl::string_view name) {
  StoredMedia media;
  if (absl::Status s = Read(caller, name, &media); !s.ok()) return s;
  return media;
}

absl::Status Catalog::Read(const auth::Caller& caller, absl::string_view name, StoredMedia* out) {
  auto id = ParseMediaName("name", name);
  if (!id.ok()) return id.status();
  return Visible(caller, name, store_->Read(*id, out), *out);
}

absl::StatusOr<bool> Catalog::ReadFromMemory(const auth::Caller& caller, absl::string_view name,
                                             StoredMedia* out) {
  auto id = ParseMediaName("name", name);
  if (!id.ok()) return id.status();
  absl::StatusOr<bool> read = store_->ReadFromMemory(*id, out);
  if (read.ok() && !*read) return false;
  if (absl::Status visible = Visible(caller, name, read.status(), *out); !visible.ok()) {
    return visible;
  }
  return true;
}

absl::Status Catalog::Visible(const auth::Caller& caller, absl::string_view name,
                              const absl::Status& read, const StoredMedia& media) {
  if (read.ok() && CanRead(caller, media)) return absl::OkStatus();
  if (!read.ok() && !absl::IsNotFound(read)) return read;
  return NoMedia(name);
}

absl::StatusOr<MediaPage> Catalog::List(const auth::Caller& caller,
                                        const v1::ListMediaRequest& request) {
  if (request.page_size() < 0 || request.page_size() > options_.max_page_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size: must be 0 to ", options_.max_page_size, ", got ", request.page_size()));
  }
  const int page_size = request.page_size() == 0 ? options_.default_page_size : request.page_size();
  const v1::MediaState state = request.state();
  if (!v1::MediaState_IsValid(state) || state == v1::DELETED) {
    return absl::InvalidArgumentError(
        absl::StrCat("state: must be UPLOADED, PROCESSING, READY, FAILED or unset, got ",
                     static_cast<int>(state)));
  }
  ScanRequest scan;
  std::string listing;
  const std::string& owner = request.owner();
  if (owner.empty() || owner == "me") {
    scan.index = MediaIndex::kOwner;
    scan.owner = caller.identity;
    listing = caller.identity;
  } else if (owner == "public") {
    scan.index = MediaIndex::kPublic;
    listing = "public";
  } else if (owner == "all") {
    if (!IsAdmin(caller)) {
      return absl::PermissionDeniedError("owner: listing \"all\" needs the media.admin scope");
    }
    scan.index = MediaIndex::kAll;
    listing = "all";
  } else {
    if (!IsOwnerId(owner)) {
      return absl::InvalidArgumentError(
          absl::StrCat("owner: must be \"\", \"me\", \"public\", \"all\" or an identity id, got \"",
                       owner.substr(0, 200), "\""));
    }
    if (owner != caller.identity && !IsAdmin(caller)) {
      return absl::PermissionDeniedError(
          "owner: listing another person's media needs the media.admin scope");
    }
    scan.index = MediaIndex::kOwner;
    scan.owner = owner;
    listing = owner;
  }
  if (scan.index == MediaIndex::kOwner && scan.owner.empty()) {
    return absl::UnauthenticatedError("caller has no identity");
  }
  if (!request.page_token().empty()) {
    auto cursor = tokens_.Decode(request.page_token());
    if (!cursor.ok()) return cursor.status();
    if (cursor->caller() != caller.identity || cursor->listing() != listing ||
        cursor->state() != state) {
      return absl::InvalidArgumentError(
          "page_token: was issued for another caller, owner or state filter");
    }
    scan.after = cursor->after();
  }
  scan.limit = page_size;
  scan.max_scan = options_.max_scan;
  if (state != v1::MEDIA_STATE_UNSPECIFIED) {
    scan.filter = [state](const StoredMedia& m) { return DerivedState(m) == state; };
  }
  auto result = store_->Scan(scan);
  if (!result.ok()) {
    // A signed cursor outside the range can only come from a bug; say so.
    if (absl::IsInvalidArgument(result.status())) {
      return absl::InvalidArgumentError(absl::StrCat("page_token: ", result.status().message()));
    }
    return result.status();
  }
  MediaPage page;
  page.media = std::move(result->media);
  if (!result->end) {
    storage::PageCursor next;
    next.set_caller(caller.identity);
    next.set_listing(listing);
    next.set_state(state);
    next.set_after(result->last_key);
    page.next_page_token = tokens_.Encode(next);
  }
  return page;
}

absl::StatusOr<StoredMedia> Catalog::ReadForChange(const auth::Caller& caller,
                                                   absl::string_view name, absl::string_view etag) {
  auto media = Get(caller, name);
  if (!media.ok()) return media.status();
  if (media->owner() != caller.identity && !IsAdmin(caller)) {
    return absl::PermissionDeniedError(
        absl::StrCat("name: \"", name, "\" belongs to another person"));
  }
  if (!etag.empty() && etag != Etag(*media)) {
    return absl::AbortedError(absl::StrCat("etag: \"", etag.substr(0, 64), "\" is stale; now \"",
                                           Etag(*media), "\" (read again and retry)"));
  }
  return media;
}

absl::Time Catalog::NextStamp(const StoredMedia& current) const {
  // Later than every stamp already in the record, so this update wins over
  // the ones before it even when the clock stepped back.
  int64_t latest = std::numeric_limits<int64_t>::min();
  for (const storage::UpdateStamp* stamp :
       {&current.title_stamp(), &current.description_stamp(), &current.visibility_stamp()}) {
    latest = std::max(latest, stamp->micros());
  }
  const absl::Time now = options_.now();
  if (latest == std::numeric_limits<int64_t>::min() || absl::ToUnixMicros(now) > latest) return now;
  return absl::FromUnixMicros(latest + 1);
}

void Catalog::PublishFromOutbox(io::cloudevents::v1::CloudEvent event) {
  const std::string id = event.id();
  publish_(std::move(event), [this, id](absl::Status published) {
    if (!published.ok()) {
      // Still in the outbox: published again at the next start.
      log::Warning("media.update_event_deferred", {{"event_id", id}, {"code", published}});
      return;
    }
    if (absl::Status s = store_->RemoveFromOutbox(id); !s.ok()) {
      log::Warning("media.outbox_remove_failed", {{"event_id", id}, {"code", s}});
    }
  });
}

absl::Status Catalog::PublishOutbox() {
  auto events = store_->Outbox();
  if (!events.ok()) return events.status();
  for (io::cloudevents::v1::CloudEvent& event : *events) PublishFromOutbox(std::move(event));
  return absl::OkStatus();
}

absl::StatusOr<StoredMedia> Catalog::Update(const auth::Caller& caller,
                                            const v1::UpdateMediaRequest& request) {
  const v1::Media& in = request.media();
  if (request.update_mask().paths_size() == 0) {
    return absl::InvalidArgumentError(
        "update_mask: required; paths among \"title\", \"description\", \"visibility\"");
  }
  bool title = false, description = false, visibility = false;
  for (const std::string& path : request.update_mask().paths()) {
    if (path == "title") {
      title = true;
    } else if (path == "description") {
      description = true;
    } else if (path == "visibility") {
      visibility = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("update_mask.paths: \"", path.substr(0, 100),
                       "\" is not updatable; allowed: \"title\", \"description\", \"visibility\""));
    }
  }
  if (title) {
    if (auto s = CheckText("media.title", in.title(), options_.max_title_chars); !s.ok()) return s;
  }
  if (description) {
    if (auto s = CheckText("media.description", in.description(), options_.max_description_chars);
        !s.ok()) {
      return s;
    }
  }
  if (visibility && in.visibility() != v1::PRIVATE && in.visibility() != v1::PUBLIC &&
      in.visibility() != v1::UNLISTED) {
    return absl::InvalidArgumentError(
        absl::StrCat("media.visibility: must be PRIVATE, PUBLIC or UNLISTED, got ",
                     static_cast<int>(in.visibility())));
  }
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto current = ReadForChange(caller, in.name(), in.etag());
    if (!current.ok()) return current.status();
    // The change is an event, applied here through the same merge as any
    // other and kept in the outbox until the broker has it: a rebuild from
    // the broker's log replays it.
    events::v1::MediaUpdated updated;
    updated.set_media(absl::StrCat("media/", current->media_id()));
    updated.set_owner(current->owner());
    if (title) {
      updated.add_paths("title");
      updated.set_title(in.title());
    }
    if (description) {
      updated.add_paths("description");
      updated.set_description(in.description());
    }
    if (visibility) {
      updated.add_paths("visibility");
      updated.set_visibility(static_cast<events::v1::MediaVisibility>(in.visibility()));
    }
    *updated.mutable_update_time() = time::ToProto(NextStamp(*current));
    io::cloudevents::v1::CloudEvent event =
        broker_client::NewEvent(kMediaUpdated, kCatalogSource, updated.media(), updated);
    broker_client::SetPartitionKey(&event, current->media_id());
    auto decoded = DecodeEvent(event);
    if (!decoded.ok()) {
      return absl::InternalError(
          absl::StrCat("UpdateMedia built a bad event: ", decoded.status().message()));
    }
    StoredMedia next = *current;
    MergeEvent(*decoded, &next);
    next.set_version(current->version() + 1);
    *next.mutable_update_time() = time::ToProto(options_.now());
    absl::Status s = store_->Write(next, current->version(), decoded->key, &event);
    if (s.ok()) {
      feed_->Publish(next);
      PublishFromOutbox(std::move(event));
      return next;
    }
    // With an etag the caller asked to lose a race; without, we retry.
    if (!absl::IsAborted(s) || !in.etag().empty()) {
      if (absl::IsAborted(s)) {
        return absl::AbortedError("etag: the media changed meanwhile (read again and retry)");
      }
      return s;
    }
  }
  return absl::AbortedError("media changed too often meanwhile; retry");
}

void Catalog::Delete(const auth::Caller& caller, const v1::DeleteMediaRequest& request,
                     DoneFn done) {
  auto current = ReadForChange(caller, request.name(), request.etag());
  if (!current.ok()) return done(current.status());
  events::v1::MediaDeleted deleted;
  deleted.set_media(request.name());
  deleted.set_owner(current->owner());
  io::cloudevents::v1::CloudEvent event =
      broker_client::NewEvent(kMediaDeleted, kCatalogSource, request.name(), deleted);
  broker_client::SetPartitionKey(&event, current->media_id());
  const std::string name = request.name();
  publish_(event, [this, event, name, done = std::move(done)](absl::Status published) {
    if (!published.ok()) {
      return done(absl::UnavailableError(absl::StrCat(
          "the broker did not take the deletion event; nothing deleted: ", published.message())));
    }
    // The event is stored; applying it here makes the deletion visible at
    // once. Should this fail, the broker's delivery applies it later.
    if (absl::Status s = Apply(event); !s.ok()) {
      log::Warning("media.delete_apply_deferred", {{"media", name}, {"code", s}});
    }
    done(absl::OkStatus());
  });
}

absl::StatusOr<v1::Backup> Catalog::Backup(const auth::Caller& caller, const std::string& root) {
  if (!IsAdmin(caller)) {
    return absl::PermissionDeniedError("CreateBackup needs the media.admin scope");
  }
  const absl::Time now = options_.now();
  const std::string dir =
      absl::StrCat(root, "/", absl::FormatTime("%Y%m%dT%H%M%E6SZ", now, absl::UTCTimeZone()));
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup_dir ", root, ": cannot create: ", ec.message()));
  }
  if (absl::Status s = store_->Checkpoint(dir); !s.ok()) return s;
  v1::Backup backup;
  backup.set_path(dir);
  *backup.mutable_create_time() = time::ToProto(now);
  // Count what the backup holds (an operator's check; it reads the index).
  ScanRequest scan;
  scan.index = MediaIndex::kAll;
  scan.limit = 10000;
  scan.max_scan = 10000;
  int64_t count = 0;
  for (;;) {
    auto page = store_->Scan(scan);
    if (!page.ok()) return page.status();
    count += static_cast<int64_t>(page->media.size());
    if (page->end) break;
    scan.after = page->last_key;
  }
  backup.set_media_count(count);
  return backup;
}

absl::StatusOr<std::vector<StoredMedia>> Catalog::Newest(absl::string_view owner, int limit) {
  ScanRequest scan;
  scan.index = MediaIndex::kOwner;
  scan.owner = std::string(owner);
  scan.limit = limit;
  scan.max_scan = limit;
  auto result = store_->Scan(scan);
  if (!result.ok()) return result.status();
  return std::move(result->media);
}

}  // namespace pettube::catalog
