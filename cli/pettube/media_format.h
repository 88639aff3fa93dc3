#pragma once

// How the CLI names and shows media: pure functions over catalog messages.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/pettube/catalog/v1/catalog.pb.h"

namespace pettube::cli {

// "abc" or "media/abc" -> "media/abc". INVALID_ARGUMENT unless the id is
// [A-Za-z0-9._-]{1,128} and not "." or "..".
absl::StatusOr<std::string> MediaName(const std::string& arg);

// "READY", "PROCESSING", ...
std::string StateName(catalog::v1::MediaState state);

// The "my media" table: NAME TITLE STATE DURATION AGE, one row per item.
std::string MediaTable(const std::vector<catalog::v1::Media>& media, absl::Time now);

// `show`: the record and each rendition with size and URL.
std::string MediaDetails(const catalog::v1::Media& media, absl::Time now);

// One line of `watch` output, e.g. "media/abc  PROCESSING  42%".
std::string WatchLine(const catalog::v1::Media& media);

// The URL `play-url` prints: `rendition` "" picks the largest video
// rendition, "hls" the HLS master playlist, else the named rendition
// (e.g. "720p", "poster"). NOT_FOUND naming what exists otherwise;
// FAILED_PRECONDITION when the media has no URLs yet (not READY).
absl::StatusOr<std::string> PlayUrl(const catalog::v1::Media& media, const std::string& rendition);

// The rendition `download` fetches ("" = largest video; "hls" is refused
// with INVALID_ARGUMENT: a playlist is not one file).
absl::StatusOr<catalog::v1::Rendition> PickRendition(const catalog::v1::Media& media,
                                                     const std::string& rendition);

// Media as JSON (proto field names, defaults included), one object.
std::string MediaJson(const catalog::v1::Media& media);

}  // namespace pettube::cli
