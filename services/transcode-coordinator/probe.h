#pragma once

// Reading what ffprobe says about a video:
//   ffprobe -v error -print_format json -show_format -show_streams URL
// ParseProbeJson turns its stdout into a SourceInfo and refuses sources we
// cannot transcode, with a reason a person can read; ClassifyProbeFailure
// turns a failed ffprobe run (exit code, stderr) into the same kind of
// status. Pure functions, thread-safe.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/pettube/events/v1/events.pb.h"

namespace pettube::transcode {

// Limits a source must respect.
struct SourceLimits {
  int min_dimension = 16;
  int max_dimension = 8192;
  // Longest accepted duration.
  double max_duration_seconds = 6 * 3600;
};

// The SourceInfo of ffprobe's JSON output. Errors (each a SourceFailure,
// FAILED_PRECONDITION with a FailureReason): SOURCE_CORRUPT when the text
// is not ffprobe JSON or names no container; NO_VIDEO_STREAM when there is
// no video stream besides cover art; UNSUPPORTED_SOURCE when the video
// codec is unknown; SOURCE_OUT_OF_RANGE for a width or height outside the
// limits or a missing, zero or too long duration.
absl::StatusOr<pettube::events::v1::SourceInfo> ParseProbeJson(absl::string_view json,
                                                               const SourceLimits& limits = {});

// The status for an ffprobe (or ffmpeg) run that exited with `exit_code`
// and wrote `stderr_text`: UNAVAILABLE (tagged SOURCE_UNREADABLE) for
// network and HTTP errors worth retrying (connection refused, 5xx, 401/403
// while a token may be renewed), FAILED_PRECONDITION for the rest: 404
// (SOURCE_UNREADABLE), invalid data / missing moov atom (SOURCE_CORRUPT).
// The message is "<what>: <ffprobe's own last error line>".
absl::Status ClassifyProbeFailure(absl::string_view what, int exit_code,
                                  absl::string_view stderr_text);

// The last non-empty line of `text`, trimmed (ffmpeg's own error line).
std::string LastLine(absl::string_view text);

}  // namespace pettube::transcode
