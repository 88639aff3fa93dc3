#include "services/transcode-coordinator/failure.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace pettube::transcode {
namespace {

constexpr char kPayloadUrl[] = "type.googleapis.com/pettube.events.v1.FailureReason";

}  // namespace

absl::Status SourceFailure(pettube::events::v1::FailureReason reason, absl::string_view message) {
  return WithFailureReason(absl::FailedPreconditionError(message), reason);
}

absl::Status WithFailureReason(absl::Status status, pettube::events::v1::FailureReason reason) {
  if (status.ok()) return status;
  status.SetPayload(kPayloadUrl, absl::Cord(absl::StrCat(static_cast<int>(reason))));
  return status;
}

pettube::events::v1::FailureReason FailureReasonOf(const absl::Status& status) {
  if (status.ok()) return pettube::events::v1::FAILURE_REASON_UNSPECIFIED;
  auto payload = status.GetPayload(kPayloadUrl);
  int value = 0;
  if (payload.has_value() && absl::SimpleAtoi(std::string(*payload), &value) &&
      pettube::events::v1::FailureReason_IsValid(value)) {
    return static_cast<pettube::events::v1::FailureReason>(value);
  }
  return pettube::events::v1::INTERNAL_ERROR;
}

bool IsPermanent(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition ||
         status.code() == absl::StatusCode::kInvalidArgument;
}

}  // namespace pettube::transcode
