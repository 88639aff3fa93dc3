#pragma once

// Decoding the broker's events into what the projection applies, and the
// merge rules that fold one event into a stored record.
//
// Ordering: the projection does not rely on delivery order. A record is a
// merge of facts (see catalog_storage.proto): the upload, each job's
// highest progress, each finished rendition, ready, failed, deleted. Facts
// of an older run are dropped: a job's events carry the job's generation
// (an event of an older generation than the one seen is ignored, a newer
// one replaces that job's facts) and media.ready / media.failed carry the
// plan's generation (the newest run's outcome wins; FAILED wins a tie).
// Every rule is a max, a set union or a sticky flag, so any order of the
// same events yields the same record. A deletion is a tombstone that later
// events cannot undo. Title, description and visibility are last-writer-
// wins registers: each pettube.media.updated stamps the fields it sets
// (update time, then event key), the newest stamp wins, and the upload's
// title counts as older than any update.

#include <string>
#include <variant>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/catalog/v1/catalog.pb.h"
#include "proto/pettube/events/v1/events.pb.h"
#include "services/media-catalog/media_store.h"

namespace pettube::catalog {

// CloudEvent types and the sources allowed to send them.
inline constexpr char kMediaUploaded[] = "pettube.media.uploaded";
inline constexpr char kJobRequested[] = "pettube.transcode.job.requested";
inline constexpr char kJobProgressed[] = "pettube.transcode.job.progressed";
inline constexpr char kJobCompleted[] = "pettube.transcode.job.completed";
inline constexpr char kJobFailed[] = "pettube.transcode.job.failed";
inline constexpr char kMediaReady[] = "pettube.media.ready";
inline constexpr char kMediaFailed[] = "pettube.media.failed";
inline constexpr char kMediaDeleted[] = "pettube.media.deleted";
inline constexpr char kMediaUpdated[] = "pettube.media.updated";
inline constexpr char kCatalogSource[] = "//pettube/media-catalog";

// One decoded event.
struct MediaEvent {
  // Media id (the part after "media/").
  std::string media_id;
  // Applied-events key (source + id).
  std::string key;
  // Event `time`, or InfinitePast when absent.
  absl::Time time = absl::InfinitePast();
  std::variant<events::v1::MediaUploaded, events::v1::TranscodeJobRequested,
               events::v1::TranscodeJobProgressed, events::v1::TranscodeJobCompleted,
               events::v1::TranscodeJobFailed, events::v1::MediaReady, events::v1::MediaFailed,
               events::v1::MediaDeleted, events::v1::MediaUpdated>
      payload;
};

// INVALID_ARGUMENT, naming the attribute or field, for: a missing id or
// source, an unknown type, a source not allowed for the type, a payload
// that does not parse as the type's message, a malformed media name, or a
// subject that names another media item than the payload.
absl::StatusOr<MediaEvent> DecodeEvent(const io::cloudevents::v1::CloudEvent& event);

// Folds `event` into `media` (which may be an empty record with only
// media_id set). Returns whether anything changed. Never fails: a fact that
// conflicts with a newer one is dropped.
bool MergeEvent(const MediaEvent& event, StoredMedia* media);

// "media/{id}" -> id. INVALID_ARGUMENT naming `field` unless the id is 1 to
// 128 of [A-Za-z0-9._-] and not "." or "..".
absl::StatusOr<std::string> ParseMediaName(absl::string_view field, absl::string_view name);

// The state a reader sees.
v1::MediaState DerivedState(const StoredMedia& media);
// Overall progress, 0 to 1: the mean of the known jobs, 1 once READY.
double DerivedProgress(const StoredMedia& media);

}  // namespace pettube::catalog
