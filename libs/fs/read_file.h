#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pettube::fs {

// The whole file. FAILED_PRECONDITION "<what> <path>: cannot read (<why>)"
// when it cannot be opened; `what` names the flag or setting it came from.
absl::StatusOr<std::string> ReadFile(absl::string_view what, const std::string& path);

}  // namespace pettube::fs
