#include "services/upload/uploads.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/broker_client/event_builder.h"
#include "libs/log/log.h"
#include "libs/time/proto_time.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "services/upload/object_keys.h"
#include "services/upload/video_sniffer.h"

namespace pettube::upload {
namespace {

using internal::ObjectRecord;
using internal::UploadRecord;

constexpr absl::string_view kUploadPrefix = "uploads/";
constexpr absl::string_view kMediaPrefix = "media/";
constexpr size_t kMaxTitleChars = 200;
constexpr absl::string_view kEventSource = "//pettube/upload";
constexpr absl::string_view kUploadedType = "pettube.media.uploaded";

absl::Status CheckSha256(absl::string_view field, absl::string_view hex) {
  if (hex.size() != 64) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be 64 lower-case hex digits, got ", hex.size(), " characters"));
  }
  for (char c : hex) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": must be lower-case hex"));
    }
  }
  return absl::OkStatus();
}

// Well-formed UTF-8 without control characters, at most `max_chars` code
// points.
absl::Status CheckText(absl::string_view field, absl::string_view text, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > text.size()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
    }
    for (int k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
      }
    }
    if (len == 1 && (c < 0x20 || c == 0x7F)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": control characters not allowed"));
    }
    i += len;
    ++chars;
  }
  if (chars > max_chars) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most ", max_chars, " characters, got ", chars));
  }
  return absl::OkStatus();
}

// "type/subtype" of RFC 6838 token characters: it becomes a Content-Type.
absl::Status CheckContentType(absl::string_view type) {
  const size_t slash = type.find('/');
  bool ok = type.size() <= 127 && slash != absl::string_view::npos && slash > 0 &&
            slash + 1 < type.size() && type.find('/', slash + 1) == absl::string_view::npos;
  for (char c : type) {
    if (!ok) break;
    ok = absl::ascii_isalnum(c) || absl::string_view("/!#$&^_.+-").find(c) != absl::string_view::npos;
  }
  return ok ? absl::OkStatus()
            : absl::InvalidArgumentError(
                  "content_type: must be a MIME type \"type/subtype\", e.g. \"video/mp4\"");
}

std::string ContainerMimeType(absl::string_view container) {
  if (container == "mp4") return "video/mp4";
  if (container == "matroska") return "video/x-matroska";
  if (container == "avi") return "video/x-msvideo";
  if (container == "mpegts") return "video/mp2t";
  if (container == "mpegps") return "video/mpeg";
  if (container == "flv") return "video/x-flv";
  if (container == "ogg") return "video/ogg";
  if (container == "asf") return "video/x-ms-asf";
  return "application/octet-stream";
}

absl::StatusOr<std::string> UploadIdOf(absl::string_view name) {
  if (!absl::StartsWith(name, kUploadPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: want \"uploads/{upload_id}\", got \"", name.substr(0, 100), "\""));
  }
  const absl::string_view id = name.substr(kUploadPrefix.size());
  if (auto s = ValidateId("name", id); !s.ok()) return s;
  return std::string(id);
}

bool IsOriginals(const UploadRecord& r) { return r.session().bucket() == kOriginals; }

}  // namespace

Uploads::Uploads(UploadStore* store, BlobStore* blobs, Options options, CommitListener on_commit)
    : store_(store), blobs_(blobs), options_(std::move(options)), on_commit_(std::move(on_commit)) {
  if (options_.run_expiry_timer) timer_ = std::thread([this] { RunExpiryTimer(); });
}

Uploads::~Uploads() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (timer_.joinable()) timer_.join();
}

absl::Status Uploads::Recover() {
  auto staged = blobs_->ListStaged();
  if (!staged.ok()) return staged.status();
  for (const std::string& id : *staged) {
    auto record = store_->GetUpload(id);
    if (!record.ok()) return record.status();
    const v1::UploadState state =
        record->has_value() ? (*record)->session().state() : v1::ABORTED;
    if (state == v1::COMMITTED) {
      // Recorded but not yet moved into place when the process stopped.
      absl::Status s = blobs_->CommitStaged(id, (*record)->session().bucket(),
                                            (*record)->session().key());
      if (!s.ok() && !absl::IsNotFound(s)) return s;
    } else if (state != v1::ACTIVE) {
      if (auto s = blobs_->DiscardStaged(id); !s.ok()) return s;
    }
  }
  auto active = store_->ListActiveUploads();
  if (!active.ok()) return active.status();
  for (const UploadRecord& r : *active) {
    ScheduleExpiry(r.session().name().substr(kUploadPrefix.size()),
                   time::FromProto(r.session().expire_time()));
  }
  auto outbox = store_->ListOutbox();
  if (!outbox.ok()) return outbox.status();
  for (const OutboxEntry& e : *outbox) on_commit_(e);
  log::Info("upload.recovered", {{"active", active->size()}, {"outbox", outbox->size()}});
  return absl::OkStatus();
}

absl::StatusOr<v1::UploadSession> Uploads::Create(const auth::Caller& caller,
                                                  const v1::CreateUploadRequest& request) {
  const std::string bucket = request.bucket().empty() ? std::string(kOriginals) : request.bucket();
  if (auto s = ValidateBucket("bucket", bucket); !s.ok()) return s;
  const absl::Time now = options_.now();
  UploadRecord record;
  v1::UploadSession& session = *record.mutable_session();
  const std::string upload_id = NewUploadId();
  std::string media_id;
  if (bucket == kOriginals) {
    if (!caller.HasScope(kUploadScope)) {
      return absl::PermissionDeniedError("uploading a video needs the media.upload scope");
    }
    if (request.title().empty()) return absl::InvalidArgumentError("title: must not be empty");
    if (auto s = CheckText("title", request.title(), kMaxTitleChars); !s.ok()) return s;
    if (auto s = ValidateId("caller identity", caller.identity); !s.ok()) return s;
    media_id = NewMediaId();
    session.set_key(OriginalKey(caller.identity, media_id));
  } else {
    if (!caller.HasScope(kObjectsWriteScope)) {
      return absl::PermissionDeniedError("writing renditions needs the objects.write scope");
    }
    if (auto s = ValidateKey("key", request.key()); !s.ok()) return s;
    std::vector<absl::string_view> segments = absl::StrSplit(request.key(), '/');
    if (segments.size() < 3) {
      return absl::InvalidArgumentError("key: want \"{owner}/{media_id}/{file}\"");
    }
    media_id = std::string(segments[1]);
    if (!request.title().empty()) {
      if (auto s = CheckText("title", request.title(), kMaxTitleChars); !s.ok()) return s;
    }
    auto source = store_->GetObject(kOriginals, OriginalKey(segments[0], media_id));
    if (!source.ok()) return source.status();
    if (!source->has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("key: media/", media_id, " of ", segments[0], " has no original"));
    }
    auto deleted = store_->IsMediaDeleted(media_id);
    if (!deleted.ok()) return deleted.status();
    if (*deleted) {
      return absl::FailedPreconditionError(absl::StrCat("key: media/", media_id, " was deleted"));
    }
    session.set_key(request.key());
  }
  if (!request.content_type().empty()) {
    if (auto s = CheckContentType(request.content_type()); !s.ok()) return s;
  }
  if (request.total_size() < 0) {
    return absl::InvalidArgumentError("total_size: must not be negative");
  }
  if (request.total_size() > options_.max_object_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("total_size: ", request.total_size(),
                                                     " bytes is over the limit of ",
                                                     options_.max_object_bytes));
  }
  if (!request.sha256().empty()) {
    if (auto s = CheckSha256("sha256", request.sha256()); !s.ok()) return s;
  }
  if (bucket == kOriginals && request.total_size() > 0) {
    auto used = store_->Usage(caller.identity);
    if (!used.ok()) return used.status();
    if (*used + request.total_size() > options_.quota_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "quota: ", request.total_size(), " more bytes would exceed your quota of ",
          options_.quota_bytes, " (", *used, " used)"));
    }
  }
  session.set_name(absl::StrCat(kUploadPrefix, upload_id));
  session.set_media(absl::StrCat(kMediaPrefix, media_id));
  session.set_committed_size(0);
  session.set_state(v1::ACTIVE);
  session.set_total_size(request.total_size());
  *session.mutable_expire_time() = time::ToProto(now + options_.upload_ttl);
  session.set_bucket(bucket);
  session.set_title(request.title());
  session.set_content_type(request.content_type());
  record.set_owner(caller.identity);
  record.set_sha256_state(Sha256State().Save());
  record.set_declared_sha256(request.sha256());
  *record.mutable_create_time() = time::ToProto(now);
  // The staging exists from the start, so a resume always finds it.
  auto staged = blobs_->OpenStaged(upload_id, 0);
  if (!staged.ok()) return staged.status();
  staged->reset();
  if (auto s = store_->PutUpload(record, 0); !s.ok()) return s;
  ScheduleExpiry(upload_id, now + options_.upload_ttl);
  return session;
}

absl::StatusOr<UploadRecord> Uploads::LoadOwned(const auth::Caller& caller,
                                                absl::string_view name) {
  auto id = UploadIdOf(name);
  if (!id.ok()) return id.status();
  auto record = store_->GetUpload(*id);
  if (!record.ok()) return record.status();
  // Someone else's upload is reported exactly like a missing one.
  if (!record->has_value() || (*record)->owner() != caller.identity) {
    return absl::NotFoundError(absl::StrCat("upload ", name, " not found"));
  }
  return **std::move(record);
}

absl::StatusOr<v1::UploadSession> Uploads::Query(const auth::Caller& caller,
                                                 absl::string_view name) {
  auto record = LoadOwned(caller, name);
  if (!record.ok()) return record.status();
  return record->session();
}

absl::Status Uploads::Abort(const auth::Caller& caller, absl::string_view name) {
  auto record = LoadOwned(caller, name);
  if (!record.ok()) return record.status();
  if (record->session().state() == v1::COMMITTED) {
    return absl::FailedPreconditionError(absl::StrCat("upload ", name, " is already committed"));
  }
  if (record->session().state() == v1::ABORTED) return absl::OkStatus();
  const std::string id(name.substr(kUploadPrefix.size()));
  {
    absl::MutexLock lock(&mu_);
    // Held as if writing while aborting, so no Write can start meanwhile.
    if (!writing_.insert(id).second) {
      return absl::AbortedError(absl::StrCat("upload ", name, " has a Write stream open"));
    }
  }
  // Re-read under the claim: a Write that ended just before may have
  // committed it.
  auto fresh = LoadOwned(caller, name);
  absl::Status s = fresh.ok() ? (fresh->session().state() == v1::ACTIVE
                                     ? AbortRecord(*std::move(fresh))
                                     : fresh->session().state() == v1::COMMITTED
                                           ? absl::FailedPreconditionError(absl::StrCat(
                                                 "upload ", name, " is already committed"))
                                           : absl::OkStatus())
                              : fresh.status();
  absl::MutexLock lock(&mu_);
  writing_.erase(id);
  return s;
}

absl::Status Uploads::AbortRecord(UploadRecord record) {
  const std::string id = record.session().name().substr(kUploadPrefix.size());
  const int64_t staged = record.session().committed_size();
  record.mutable_session()->set_state(v1::ABORTED);
  record.mutable_session()->clear_expire_time();
  if (auto s = store_->PutUpload(record, -staged); !s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = expire_at_.find(id); it != expire_at_.end()) {
      expiry_queue_.erase({it->second, id});
      expire_at_.erase(it);
    }
  }
  return blobs_->DiscardStaged(id);
}

absl::StatusOr<std::unique_ptr<UploadWriter>> Uploads::BeginWrite(const auth::Caller& caller,
                                                                  absl::string_view name) {
  auto record = LoadOwned(caller, name);
  if (!record.ok()) return record.status();
  const std::string id = record->session().name().substr(kUploadPrefix.size());
  {
    absl::MutexLock lock(&mu_);
    auto released = [this, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !writing_.contains(id);
    };
    mu_.AwaitWithTimeout(absl::Condition(&released), options_.writer_handoff_wait);
    if (!writing_.insert(id).second) {
      return absl::AbortedError(
          absl::StrCat("upload ", name, " already has a Write stream open; one at a time"));
    }
  }
  // Re-read under the claim: the stream that just released it may have
  // moved the offset or committed.
  auto fresh = LoadOwned(caller, name);
  auto fail = [&](absl::Status s) {
    ReleaseWriter(id);
    return s;
  };
  if (!fresh.ok()) return fail(fresh.status());
  if (fresh->session().state() == v1::COMMITTED) {
    return fail(absl::FailedPreconditionError(absl::StrCat("upload ", name, " is already committed")));
  }
  if (fresh->session().state() != v1::ACTIVE) {
    return fail(absl::FailedPreconditionError(absl::StrCat("upload ", name, " was aborted or expired")));
  }
  auto hash = Sha256State::Restore(fresh->sha256_state());
  if (!hash.ok()) {
    return fail(absl::DataLossError(absl::StrCat("upload ", name, ": stored hash state is unusable")));
  }
  auto staged = blobs_->OpenStaged(id, fresh->session().committed_size());
  if (!staged.ok()) return fail(staged.status());
  auto writer = std::unique_ptr<UploadWriter>(
      new UploadWriter(this, *std::move(fresh), *std::move(hash), *std::move(staged)));
  writer->id_ = id;
  return writer;
}

void Uploads::ReleaseWriter(const std::string& upload_id) {
  absl::MutexLock lock(&mu_);
  writing_.erase(upload_id);
}

absl::StatusOr<v1::ObjectInfo> Uploads::Stat(const auth::Caller& caller,
                                             absl::string_view bucket, absl::string_view key) {
  if (auto s = ValidateBucket("bucket", bucket); !s.ok()) return s;
  if (auto s = ValidateKey("key", key); !s.ok()) return s;
  const bool owner = absl::StartsWith(key, absl::StrCat(caller.identity, "/"));
  auto record = FindObject(bucket, key);
  if (!caller.HasScope(kObjectsReadScope) && !owner) {
    // Not the caller's: as if it did not exist.
    return absl::NotFoundError(absl::StrCat("object ", bucket, "/", key, " not found"));
  }
  if (!record.ok()) return record.status();
  return record->info();
}

absl::StatusOr<ObjectRecord> Uploads::FindObject(absl::string_view bucket,
                                                 absl::string_view key) {
  auto record = store_->GetObject(bucket, key);
  if (!record.ok()) return record.status();
  if (!record->has_value()) {
    return absl::NotFoundError(absl::StrCat("object ", bucket, "/", key, " not found"));
  }
  return **std::move(record);
}

absl::Status Uploads::DeleteMedia(absl::string_view owner, absl::string_view media_name) {
  if (!absl::StartsWith(media_name, kMediaPrefix)) {
    return absl::InvalidArgumentError(absl::StrCat("media: want \"media/{media_id}\", got \"",
                                                   media_name.substr(0, 100), "\""));
  }
  const absl::string_view media_id = media_name.substr(kMediaPrefix.size());
  if (auto s = ValidateId("media", media_id); !s.ok()) return s;
  if (auto s = ValidateId("owner", owner); !s.ok()) return s;
  const std::string prefix = MediaPrefix(owner, media_id);
  std::vector<ObjectRecord> records;
  for (absl::string_view bucket : {kOriginals, kRenditions}) {
    auto listed = store_->ListObjects(bucket, prefix);
    if (!listed.ok()) return listed.status();
    // Bytes without a record too (a commit a crash interrupted).
    auto keys = blobs_->List(bucket, prefix);
    if (!keys.ok()) return keys.status();
    for (const std::string& key : *keys) {
      if (auto s = blobs_->Delete(bucket, key); !s.ok()) return s;
    }
    for (ObjectRecord& r : *listed) {
      if (auto s = blobs_->Delete(bucket, r.info().key()); !s.ok()) return s;
      records.push_back(std::move(r));
    }
  }
  if (auto s = store_->DeleteObjects(records, media_id); !s.ok()) return s;
  log::Info("upload.media_deleted", {{"media", media_name}, {"objects", records.size()}});
  return absl::OkStatus();
}

void Uploads::ScheduleExpiry(const std::string& upload_id, absl::Time at) {
  absl::MutexLock lock(&mu_);
  if (auto it = expire_at_.find(upload_id); it != expire_at_.end()) {
    expiry_queue_.erase({it->second, upload_id});
  }
  expire_at_[upload_id] = at;
  expiry_queue_.insert({at, upload_id});
}

void Uploads::ExpireDue() {
  const absl::Time now = options_.now();
  std::vector<std::string> due;
  {
    absl::MutexLock lock(&mu_);
    while (!expiry_queue_.empty() && expiry_queue_.begin()->first <= now) {
      const std::string id = expiry_queue_.begin()->second;
      expiry_queue_.erase(expiry_queue_.begin());
      expire_at_.erase(id);
      // A stream is writing: it is not stale; its checkpoint reschedules.
      if (writing_.insert(id).second) due.push_back(id);
    }
  }
  for (const std::string& id : due) {
    auto record = store_->GetUpload(id);
    bool expired = false;
    if (record.ok() && record->has_value() && (*record)->session().state() == v1::ACTIVE) {
      const absl::Time at = time::FromProto((*record)->session().expire_time());
      if (at <= now) {
        absl::Status s = AbortRecord(**std::move(record));
        if (s.ok()) {
          expired = true;
        } else {
          log::Warning("upload.expire_failed", {{"upload", id}, {"code", s}});
        }
      } else {
        ScheduleExpiry(id, at);
      }
    }
    ReleaseWriter(id);
    if (expired) {
      log::Info("upload.expired", {{"upload", id}});
      if (options_.probe != nullptr) options_.probe->Expired();
      if (options_.on_expired) options_.on_expired(id);
    }
  }
}

void Uploads::RunExpiryTimer() {
  mu_.Lock();
  while (!stopping_) {
    if (expiry_queue_.empty()) {
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !expiry_queue_.empty();
      };
      mu_.Await(absl::Condition(&wake));
      continue;
    }
    const absl::Time next = expiry_queue_.begin()->first;
    // Sleep until the earliest deadline, or until an earlier one is
    // scheduled, or until asked to stop.
    auto sooner = [this, next]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || expiry_queue_.empty() || expiry_queue_.begin()->first < next;
    };
    if (mu_.AwaitWithDeadline(absl::Condition(&sooner), next)) continue;
    mu_.Unlock();
    ExpireDue();
    mu_.Lock();
  }
  mu_.Unlock();
}

// ---- UploadWriter ----

UploadWriter::~UploadWriter() {
  if (!done_) {
    if (absl::Status s = Checkpoint(); !s.ok()) {
      log::Warning("upload.checkpoint_failed", {{"upload", id_}, {"code", s}});
    }
  }
  uploads_->ReleaseWriter(id_);
}

absl::Status UploadWriter::Checkpoint() {
  if (done_) return absl::OkStatus();
  const int64_t recorded = record_.session().committed_size();
  const absl::Time expire = uploads_->options_.now() + uploads_->options_.upload_ttl;
  if (position_ == recorded) {
    uploads_->ScheduleExpiry(id_, time::FromProto(record_.session().expire_time()));
    return absl::OkStatus();
  }
  if (auto s = staged_->Sync(); !s.ok()) return s;
  UploadRecord next = record_;
  next.mutable_session()->set_committed_size(position_);
  next.set_sha256_state(hash_.Save());
  *next.mutable_session()->mutable_expire_time() = time::ToProto(expire);
  if (auto s = uploads_->store_->PutUpload(next, position_ - recorded); !s.ok()) return s;
  record_ = std::move(next);
  uploads_->ScheduleExpiry(id_, expire);
  return absl::OkStatus();
}

absl::Status UploadWriter::CheckChunk(const v1::WriteRequest& request) {
  const v1::UploadSession& session = record_.session();
  if (done_) {
    return absl::FailedPreconditionError(absl::StrCat("upload ", session.name(), " is ",
                                                      committed() ? "already committed" : "aborted"));
  }
  if (!request.upload().empty() && request.upload() != session.name()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upload: this stream writes ", session.name(), ", not \"", request.upload().substr(0, 100),
        "\""));
  }
  if (request.write_offset() < 0) {
    return absl::InvalidArgumentError("write_offset: must not be negative");
  }
  const int64_t len = static_cast<int64_t>(request.data().size());
  if (request.data().size() > kMaxChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat("data: at most ", kMaxChunkBytes,
                                                   " bytes per message, got ", len));
  }
  if (request.write_offset() != position_) {
    return absl::OutOfRangeError(absl::StrCat(
        "write_offset: ", request.write_offset(), " is not the current size ", position_,
        " (chunks must be in order without gaps or overlaps; QueryUpload tells where to resume)"));
  }
  const int64_t end = position_ + len;
  if (session.total_size() > 0 && end > session.total_size()) {
    return absl::OutOfRangeError(absl::StrCat("data: the chunk ends at byte ", end,
                                              ", past the declared total_size ",
                                              session.total_size()));
  }
  if (end > uploads_->options_.max_object_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "data: the object would exceed the limit of ", uploads_->options_.max_object_bytes,
        " bytes"));
  }
  if (IsOriginals(record_) && len > 0) {
    auto used = uploads_->store_->Usage(record_.owner());
    if (!used.ok()) return used.status();
    const int64_t unrecorded = end - session.committed_size();
    if (*used + unrecorded > uploads_->options_.quota_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "quota: this upload would exceed your quota of ", uploads_->options_.quota_bytes,
          " bytes (", *used, " used)"));
    }
  }
  if (IsOriginals(record_) && position_ == 0) {
    // The container check runs on the first bytes, before any is stored.
    size_t need = kSniffBytes;
    if (session.total_size() > 0) need = std::min<size_t>(need, session.total_size());
    if (request.finish_write()) need = std::min<size_t>(need, request.data().size());
    if (request.data().empty()) {
      return absl::InvalidArgumentError("data: the upload is empty");
    }
    if (request.data().size() < need) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data: the chunk at offset 0 must hold the first ", need,
          " bytes (to check the video container), got ", request.data().size()));
    }
    auto container = SniffVideoContainer(request.data());
    if (!container.has_value()) {
      return absl::InvalidArgumentError(
          "data: not a video: the first bytes match no known container (MP4/MOV, Matroska/WebM, "
          "AVI, MPEG-TS, MPEG-PS, FLV, Ogg, ASF)");
    }
    record_.set_container(*container);
  }
  return absl::OkStatus();
}

absl::Status UploadWriter::Write(const v1::WriteRequest& request) {
  if (auto s = CheckChunk(request); !s.ok()) return s;
  if (!request.data().empty()) {
    if (auto s = staged_->Append(request.data()); !s.ok()) return s;
    hash_.Update(request.data());
    position_ += static_cast<int64_t>(request.data().size());
    if (uploads_->options_.probe != nullptr) {
      uploads_->options_.probe->BytesReceived(static_cast<int64_t>(request.data().size()));
    }
  }
  if (request.finish_write()) return Finish(request);
  if (position_ - committed_size() >= uploads_->options_.checkpoint_bytes) return Checkpoint();
  return absl::OkStatus();
}

absl::Status UploadWriter::Finish(const v1::WriteRequest& request) {
  const v1::UploadSession& session = record_.session();
  std::string want = request.sha256();
  if (!want.empty()) {
    if (auto s = CheckSha256("sha256", want); !s.ok()) return s;
    if (!record_.declared_sha256().empty() && want != record_.declared_sha256()) {
      return absl::InvalidArgumentError("sha256: differs from the one given at CreateUpload");
    }
  } else {
    want = record_.declared_sha256();
  }
  if (want.empty()) {
    return absl::InvalidArgumentError(
        "sha256: required with finish_write when not given at CreateUpload");
  }
  if (position_ == 0) return absl::InvalidArgumentError("data: the upload is empty");
  if (session.total_size() > 0 && position_ != session.total_size()) {
    // Keep what arrived: the client may still send the rest.
    (void)Checkpoint();
    return absl::DataLossError(absl::StrCat("size: finished at ", position_,
                                            " bytes, but total_size declared ",
                                            session.total_size()));
  }
  const std::string got = hash_.HexDigest();
  if (got != want) {
    done_ = true;
    UploadRecord aborted = record_;
    aborted.mutable_session()->set_committed_size(position_);
    absl::Status s = uploads_->AbortRecord(std::move(aborted));
    return absl::DataLossError(absl::StrCat(
        "sha256: the bytes received hash to ", got, ", not ", want,
        "; the upload is aborted, start a new one", s.ok() ? "" : " (cleanup failed)"));
  }
  const absl::string_view media_id = absl::string_view(session.media()).substr(kMediaPrefix.size());
  if (!IsOriginals(record_)) {
    auto deleted = uploads_->store_->IsMediaDeleted(media_id);
    if (!deleted.ok()) return deleted.status();
    if (*deleted) {
      done_ = true;
      UploadRecord aborted = record_;
      aborted.mutable_session()->set_committed_size(position_);
      (void)uploads_->AbortRecord(std::move(aborted));
      return absl::FailedPreconditionError(
          absl::StrCat(session.media(), " was deleted; the rendition is discarded"));
    }
  }
  if (auto s = staged_->Sync(); !s.ok()) return s;
  const absl::Time now = uploads_->options_.now();
  const std::string content_type = !session.content_type().empty()
                                       ? session.content_type()
                                       : IsOriginals(record_)
                                             ? ContainerMimeType(record_.container())
                                             : "application/octet-stream";
  ObjectRecord object;
  v1::ObjectInfo& info = *object.mutable_info();
  info.set_bucket(session.bucket());
  info.set_key(session.key());
  info.set_size_bytes(position_);
  info.set_sha256(got);
  info.set_content_type(content_type);
  *info.mutable_create_time() = time::ToProto(now);
  if (IsOriginals(record_)) object.set_quota_owner(record_.owner());

  UploadRecord next = record_;
  v1::UploadSession& s = *next.mutable_session();
  const int64_t unrecorded = position_ - s.committed_size();
  s.set_state(v1::COMMITTED);
  s.set_committed_size(position_);
  s.clear_expire_time();
  v1::CommittedMedia& committed = *s.mutable_committed();
  committed.set_media(s.media());
  committed.set_size_bytes(position_);
  committed.set_sha256(got);
  committed.set_bucket(s.bucket());
  committed.set_key(s.key());
  next.clear_sha256_state();

  std::optional<io::cloudevents::v1::CloudEvent> event;
  if (IsOriginals(record_)) {
    events::v1::MediaUploaded uploaded;
    uploaded.set_media(s.media());
    uploaded.set_owner(record_.owner());
    uploaded.set_title(s.title());
    events::v1::ObjectRef& source = *uploaded.mutable_source();
    source.set_store(s.bucket());
    source.set_key(s.key());
    source.set_size_bytes(position_);
    source.set_sha256(got);
    source.set_content_type(content_type);
    *uploaded.mutable_upload_time() = time::ToProto(now);
    event = broker_client::NewEvent(kUploadedType, kEventSource, s.media(), uploaded);
    // The media name is the event id: a republish after a crash is a
    // duplicate the broker drops, never a second event.
    event->set_id(s.media());
    broker_client::SetPartitionKey(&*event, media_id);
    committed.set_event_id(event->id());
  }
  // Staged bytes not yet counted go on the quota with the commit.
  if (unrecorded > 0 && IsOriginals(record_)) {
    UploadRecord counted = record_;
    counted.mutable_session()->set_committed_size(position_);
    counted.set_sha256_state(hash_.Save());
    if (auto st = uploads_->store_->PutUpload(counted, unrecorded); !st.ok()) return st;
  }
  if (auto st = uploads_->store_->CommitUpload(next, object, event ? &*event : nullptr); !st.ok()) {
    return st;
  }
  record_ = std::move(next);
  done_ = true;
  {
    absl::MutexLock lock(&uploads_->mu_);
    if (auto it = uploads_->expire_at_.find(id_); it != uploads_->expire_at_.end()) {
      uploads_->expiry_queue_.erase({it->second, id_});
      uploads_->expire_at_.erase(it);
    }
  }
  // Recorded: from here a crash finishes the move at the next start.
  if (auto st = uploads_->blobs_->CommitStaged(id_, session.bucket(), session.key()); !st.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "committed, but the object could not be moved into place yet (", st.message(),
        "); it will be at the service's next start"));
  }
  if (uploads_->options_.probe != nullptr) {
    uploads_->options_.probe->Committed(session.bucket(), position_);
  }
  if (event.has_value()) uploads_->on_commit_(OutboxEntry{id_, *std::move(event)});
  return absl::OkStatus();
}

}  // namespace pettube::upload
