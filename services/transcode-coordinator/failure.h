#pragma once

// A failure of a source or a job as an absl::Status that also carries the
// machine-readable pettube.events.v1.FailureReason (as a status payload), so
// the reason survives being passed up through StatusOr-returning layers and
// ends up in TranscodeJobFailed / MediaFailed.
//
//   return SourceFailure(events::FailureReason::NO_VIDEO_STREAM,
//                        "source: has no video stream (audio only?)");
//   events::FailureReason r = FailureReasonOf(status);  // NO_VIDEO_STREAM

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/pettube/events/v1/events.pb.h"

namespace pettube::transcode {

// A permanent problem of the source or of a rendition: FAILED_PRECONDITION
// (valid request, but this input cannot be transcoded), tagged with `reason`.
absl::Status SourceFailure(pettube::events::v1::FailureReason reason, absl::string_view message);

// `status` with `reason` attached (code and message kept).
absl::Status WithFailureReason(absl::Status status, pettube::events::v1::FailureReason reason);

// The reason attached to `status`; INTERNAL_ERROR when none is attached to a
// non-OK status, FAILURE_REASON_UNSPECIFIED for OK.
pettube::events::v1::FailureReason FailureReasonOf(const absl::Status& status);

// True for failures that retrying cannot fix (the source or the rendition
// is at fault): FAILED_PRECONDITION and INVALID_ARGUMENT.
bool IsPermanent(const absl::Status& status);

}  // namespace pettube::transcode
