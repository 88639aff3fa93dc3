#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace pettube::transcode {

// Highest bitrate (bit/s) of any segment of an HLS media playlist with
// byte ranges (#EXTINF duration, #EXT-X-BYTERANGE length): the BANDWIDTH
// of the variant. 0 when the playlist has no such segments.
int64_t PeakSegmentBitrate(absl::string_view media_playlist);

}  // namespace pettube::transcode
