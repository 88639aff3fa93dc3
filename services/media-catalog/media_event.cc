#include "services/media-catalog/media_event.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/broker_client/event_builder.h"
#include "libs/time/proto_time.h"

namespace pettube::catalog {
namespace {

using events::v1::MediaDeleted;
using events::v1::MediaFailed;
using events::v1::MediaReady;
using events::v1::MediaUpdated;
using events::v1::MediaUploaded;
using events::v1::TranscodeJobCompleted;
using events::v1::TranscodeJobFailed;
using events::v1::TranscodeJobProgressed;
using events::v1::TranscodeJobRequested;

constexpr char kUploadSource[] = "//pettube/upload";
constexpr char kCoordinatorSource[] = "//pettube/transcode-coordinator";
constexpr char kWorkerSource[] = "//pettube/transcode-worker";

bool IsIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

template <typename Payload>
absl::Status Unpack(const io::cloudevents::v1::CloudEvent& event, absl::string_view source,
                    MediaEvent* out) {
  if (event.source() != source) {
    return absl::InvalidArgumentError(absl::StrCat("event.source: ", event.type(),
                                                   " must come from \"", source, "\", not \"",
                                                   event.source(), "\""));
  }
  Payload payload;
  if (auto s = broker_client::UnpackPayload(event, &payload); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("event.data: ", s.message()));
  }
  auto id = ParseMediaName("event.data.media", payload.media());
  if (!id.ok()) return id.status();
  out->media_id = std::move(*id);
  out->payload = std::move(payload);
  return absl::OkStatus();
}

// A pettube.media.updated payload the merge can apply.
absl::Status CheckUpdate(const MediaUpdated& e) {
  if (e.paths().empty()) return absl::InvalidArgumentError("event.data.paths: empty");
  for (const std::string& path : e.paths()) {
    if (path != "title" && path != "description" && path != "visibility") {
      return absl::InvalidArgumentError(absl::StrCat("event.data.paths: \"", path.substr(0, 100),
                                                     "\" is not title, description or visibility"));
    }
    if (path == "visibility" && e.visibility() != events::v1::MEDIA_VISIBILITY_PRIVATE &&
        e.visibility() != events::v1::MEDIA_VISIBILITY_PUBLIC &&
        e.visibility() != events::v1::MEDIA_VISIBILITY_UNLISTED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "event.data.visibility: must be PRIVATE, PUBLIC or UNLISTED, got ", e.visibility()));
    }
  }
  if (!e.has_update_time()) return absl::InvalidArgumentError("event.data.update_time: missing");
  return absl::OkStatus();
}

int64_t Generation(int64_t g) { return std::max<int64_t>(g, 1); }

// The job's facts, created or reset (setting *changed) when `generation`
// is new or newer; nullptr when the event is of an older generation.
storage::JobFacts* JobFor(StoredMedia* media, const std::string& job, int64_t generation,
                          bool* changed) {
  if (job.empty()) return nullptr;
  auto& jobs = *media->mutable_jobs();
  auto it = jobs.find(job);
  if (it == jobs.end()) {
    storage::JobFacts& facts = jobs[job];
    facts.set_generation(generation);
    *changed = true;
    return &facts;
  }
  if (generation < it->second.generation()) return nullptr;
  if (generation > it->second.generation()) {
    it->second.Clear();
    it->second.set_generation(generation);
    *changed = true;
  }
  return &it->second;
}

bool SetOwner(StoredMedia* media, const std::string& owner) {
  if (!media->owner().empty() || owner.empty()) return false;
  media->set_owner(owner);
  return true;
}

bool SetTranscoding(StoredMedia* media) {
  if (media->transcoding()) return false;
  media->set_transcoding(true);
  return true;
}

bool SetSourceInfo(StoredMedia* media, const events::v1::SourceInfo& info, int rank) {
  if (info.ByteSizeLong() == 0) return false;
  if (media->has_source_info()) {
    if (rank < media->source_info_rank()) return false;
    if (rank == media->source_info_rank() &&
        info.SerializeAsString() <= media->source_info().SerializeAsString()) {
      return false;
    }
  }
  *media->mutable_source_info() = info;
  media->set_source_info_rank(rank);
  return true;
}

bool Progress(StoredMedia* media, const std::string& job, int64_t generation, double progress) {
  bool changed = false;
  storage::JobFacts* facts = JobFor(media, job, Generation(generation), &changed);
  if (facts == nullptr) return changed;
  progress = std::clamp(progress, 0.0, 1.0);
  if (progress > facts->progress()) {
    facts->set_progress(progress);
    changed = true;
  }
  return changed;
}

// What the record keeps of a completion: what a read renders and what
// orders two completions of one rendition. The rest (job and media names,
// worker, timings, the HLS media object, the measured bitrates and codecs
// of the master playlist) is the coordinator's business; keeping it made
// every record, and so every read, about a fifth larger.
TranscodeJobCompleted Kept(const TranscodeJobCompleted& done) {
  TranscodeJobCompleted kept;
  *kept.mutable_rendition() = done.rendition();
  *kept.mutable_output() = done.output();
  if (done.has_duration()) *kept.mutable_duration() = done.duration();
  kept.set_generation(done.generation());
  kept.set_attempt(done.attempt());
  if (done.has_hls_playlist()) {
    kept.mutable_hls_playlist()->set_store(done.hls_playlist().store());
    kept.mutable_hls_playlist()->set_key(done.hls_playlist().key());
  }
  return kept;
}

// Keeps, per rendition name, the completion of the newest generation; ties
// go to the later attempt, then to the larger serialized value (of the kept
// part), so the result does not depend on arrival order.
bool AddRendition(StoredMedia* media, const TranscodeJobCompleted& done) {
  const std::string& name = done.rendition().name();
  if (name.empty()) return false;
  TranscodeJobCompleted kept = Kept(done);
  auto& renditions = *media->mutable_renditions();
  auto it = renditions.find(name);
  if (it != renditions.end()) {
    const TranscodeJobCompleted& old = it->second;
    if (Generation(kept.generation()) != Generation(old.generation())) {
      if (Generation(kept.generation()) < Generation(old.generation())) return false;
    } else if (kept.attempt() != old.attempt()) {
      if (kept.attempt() < old.attempt()) return false;
    } else if (kept.SerializeAsString() <= old.SerializeAsString()) {
      return false;
    }
  }
  renditions[name] = std::move(kept);
  return true;
}

bool Complete(StoredMedia* media, const TranscodeJobCompleted& done) {
  return Progress(media, done.job(), done.generation(), 1.0) | AddRendition(media, done);
}

// Records the run's outcome; the newest plan generation wins, FAILED a tie
// (then the larger error text).
bool Outcome(StoredMedia* media, int64_t generation, bool failed, const std::string& error) {
  generation = Generation(generation);
  if (generation < media->outcome_generation()) return false;
  bool changed = false;
  if (generation > media->outcome_generation()) {
    media->set_outcome_generation(generation);
    media->set_ready(false);
    media->set_failed(false);
    media->clear_error();
    changed = true;
  }
  if (failed) {
    if (media->failed() && error <= media->error()) return changed;
    media->set_failed(true);
    media->set_error(error);
    return true;
  }
  if (media->ready()) return changed;
  media->set_ready(true);
  return true;
}

// Whether `stamp` is newer than the field's current one (`has`: set).
bool Newer(bool has, const storage::UpdateStamp& current, const storage::UpdateStamp& stamp) {
  if (!has) return true;
  if (stamp.micros() != current.micros()) return stamp.micros() > current.micros();
  return stamp.event_id() > current.event_id();
}

struct Merger {
  StoredMedia* media;
  const MediaEvent& event;

  bool operator()(const MediaUploaded& e) {
    if (media->uploaded()) return false;
    media->set_uploaded(true);
    media->set_owner(e.owner());  // the upload is authoritative for the owner
    // Any update, even one that arrived first, beats the upload's title.
    if (!media->has_title_stamp()) media->set_title(e.title());
    *media->mutable_source() = e.source();
    *media->mutable_create_time() = e.upload_time();
    return true;
  }
  bool operator()(const TranscodeJobRequested& e) {
    bool changed = SetOwner(media, e.owner()) | SetTranscoding(media);
    changed |= SetSourceInfo(media, e.source_info(), 1);
    JobFor(media, e.job(), Generation(e.generation()), &changed);
    return changed;
  }
  bool operator()(const TranscodeJobProgressed& e) {
    return SetTranscoding(media) | Progress(media, e.job(), e.generation(), e.progress());
  }
  bool operator()(const TranscodeJobCompleted& e) {
    return SetTranscoding(media) | Complete(media, e);
  }
  bool operator()(const TranscodeJobFailed& e) {
    // A failed attempt only tells that this generation of the job runs.
    bool changed = SetTranscoding(media);
    JobFor(media, e.job(), Generation(e.generation()), &changed);
    return changed;
  }
  bool operator()(const MediaReady& e) {
    bool changed = SetOwner(media, e.owner()) | SetTranscoding(media);
    changed |= SetSourceInfo(media, e.source_info(), 2);
    for (const TranscodeJobCompleted& done : e.renditions()) changed |= Complete(media, done);
    if (e.has_poster() && !e.poster().key().empty() && media->renditions().count("poster") == 0) {
      TranscodeJobCompleted poster;
      poster.mutable_rendition()->set_name("poster");
      poster.mutable_rendition()->set_kind(events::v1::POSTER);
      *poster.mutable_output() = e.poster();
      poster.set_generation(e.generation());
      changed |= AddRendition(media, poster);
    }
    if (e.has_master_playlist() && media->hls_master_key() != e.master_playlist().key()) {
      media->set_hls_master_key(e.master_playlist().key());
      changed = true;
    }
    return Outcome(media, e.generation(), /*failed=*/false, "") | changed;
  }
  bool operator()(const MediaFailed& e) {
    bool changed = SetOwner(media, e.owner()) | SetTranscoding(media);
    changed |= SetSourceInfo(media, e.source_info(), 1);
    return Outcome(media, e.generation(), /*failed=*/true,
                   e.error().empty() ? "transcoding failed" : e.error()) |
           changed;
  }
  bool operator()(const MediaUpdated& e) {
    bool changed = SetOwner(media, e.owner());
    storage::UpdateStamp stamp;
    stamp.set_micros(absl::ToUnixMicros(time::FromProto(e.update_time())));
    stamp.set_event_id(event.key);
    for (const std::string& path : e.paths()) {
      if (path == "title" && Newer(media->has_title_stamp(), media->title_stamp(), stamp)) {
        media->set_title(e.title());
        *media->mutable_title_stamp() = stamp;
        changed = true;
      } else if (path == "description" &&
                 Newer(media->has_description_stamp(), media->description_stamp(), stamp)) {
        media->set_description(e.description());
        *media->mutable_description_stamp() = stamp;
        changed = true;
      } else if (path == "visibility" &&
                 Newer(media->has_visibility_stamp(), media->visibility_stamp(), stamp)) {
        media->set_visibility(static_cast<v1::Visibility>(e.visibility()));
        *media->mutable_visibility_stamp() = stamp;
        changed = true;
      }
    }
    return changed;
  }
  bool operator()(const MediaDeleted& e) {
    StoredMedia tombstone;
    tombstone.set_media_id(media->media_id());
    tombstone.set_owner(media->owner().empty() ? e.owner() : media->owner());
    tombstone.set_version(media->version());
    tombstone.set_deleted(true);
    *media = std::move(tombstone);
    return true;
  }
};

}  // namespace

absl::StatusOr<std::string> ParseMediaName(absl::string_view field, absl::string_view name) {
  constexpr absl::string_view kPrefix = "media/";
  auto invalid = [&](absl::string_view rule) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", rule, ", got \"", name.substr(0, 200), "\""));
  };
  if (!absl::StartsWith(name, kPrefix)) return invalid("must be \"media/{media_id}\"");
  absl::string_view id = name.substr(kPrefix.size());
  if (id.empty() || id.size() > 128) return invalid("media id must be 1 to 128 characters");
  if (id == "." || id == "..") return invalid("media id must not be \".\" or \"..\"");
  for (char c : id) {
    if (!IsIdChar(c)) return invalid("media id must be of [A-Za-z0-9._-]");
  }
  return std::string(id);
}

absl::StatusOr<MediaEvent> DecodeEvent(const io::cloudevents::v1::CloudEvent& event) {
  if (event.id().empty()) return absl::InvalidArgumentError("event.id: must not be empty");
  if (event.source().empty()) return absl::InvalidArgumentError("event.source: must not be empty");
  MediaEvent out;
  absl::Status s;
  const std::string& type = event.type();
  if (type == kMediaUploaded) {
    s = Unpack<MediaUploaded>(event, kUploadSource, &out);
  } else if (type == kJobRequested) {
    s = Unpack<TranscodeJobRequested>(event, kCoordinatorSource, &out);
  } else if (type == kJobProgressed) {
    s = Unpack<TranscodeJobProgressed>(event, kWorkerSource, &out);
  } else if (type == kJobCompleted) {
    s = Unpack<TranscodeJobCompleted>(event, kWorkerSource, &out);
  } else if (type == kJobFailed) {
    s = Unpack<TranscodeJobFailed>(event, kWorkerSource, &out);
  } else if (type == kMediaReady) {
    s = Unpack<MediaReady>(event, kCoordinatorSource, &out);
  } else if (type == kMediaFailed) {
    s = Unpack<MediaFailed>(event, kCoordinatorSource, &out);
  } else if (type == kMediaDeleted) {
    s = Unpack<MediaDeleted>(event, kCatalogSource, &out);
  } else if (type == kMediaUpdated) {
    s = Unpack<MediaUpdated>(event, kCatalogSource, &out);
    if (s.ok()) s = CheckUpdate(std::get<MediaUpdated>(out.payload));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("event.type: unknown event type \"", type.substr(0, 200), "\""));
  }
  if (!s.ok()) return s;
  if (auto subject = broker_client::GetAttribute(event, "subject");
      subject.has_value() && *subject != absl::StrCat("media/", out.media_id)) {
    return absl::InvalidArgumentError(absl::StrCat("event.subject: \"", subject->substr(0, 200),
                                                   "\" names another media item than the payload's "
                                                   "\"media/",
                                                   out.media_id, "\""));
  }
  if (auto it = event.attributes().find("time");
      it != event.attributes().end() && it->second.has_ce_timestamp()) {
    out.time = time::FromProto(it->second.ce_timestamp());
  }
  out.key = EventKey(event.source(), event.id());
  return out;
}

bool MergeEvent(const MediaEvent& event, StoredMedia* media) {
  if (media->deleted()) return false;  // a tombstone is final
  return std::visit(Merger{media, event}, event.payload);
}

v1::MediaState DerivedState(const StoredMedia& media) {
  if (media.deleted()) return v1::DELETED;
  if (media.failed()) return v1::FAILED;
  if (media.ready()) return v1::READY;
  if (media.transcoding()) return v1::PROCESSING;
  return v1::UPLOADED;
}

double DerivedProgress(const StoredMedia& media) {
  if (media.ready()) return 1.0;
  if (media.jobs().empty()) return 0.0;
  double sum = 0;
  for (const auto& [name, facts] : media.jobs()) sum += facts.progress();
  return sum / static_cast<double>(media.jobs().size());
}

}  // namespace pettube::catalog
