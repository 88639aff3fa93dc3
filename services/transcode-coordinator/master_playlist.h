#pragma once

// HLS master playlists and the codec strings they carry. Pure functions,
// thread-safe.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proto/pettube/events/v1/events.pb.h"

namespace pettube::transcode {

// RFC 6381 codecs for an H.264 stream with ffprobe's `profile` ("High",
// "Main", "Constrained Baseline", ...) and `level` (31 for 3.1), plus AAC
// when `aac_profile` is not empty ("LC" -> mp4a.40.2, "HE-AAC" -> mp4a.40.5):
// "avc1.64001f,mp4a.40.2".
std::string Rfc6381Codecs(absl::string_view profile, int level, absl::string_view aac_profile);

// The master playlist over the completed video renditions (posters are
// skipped): one #EXT-X-STREAM-INF per variant, highest bandwidth first,
// with BANDWIDTH (peak, else average), AVERAGE-BANDWIDTH, RESOLUTION,
// FRAME-RATE and CODECS, referencing "{name}.m3u8" relative to the master.
std::string MasterPlaylist(const std::vector<pettube::events::v1::TranscodeJobCompleted>& variants);

}  // namespace pettube::transcode
