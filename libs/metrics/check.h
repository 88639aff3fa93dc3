#pragma once

#include "absl/strings/string_view.h"

namespace pettube::metrics::internal {

// Writes "pettube::metrics: <message>" to stderr and aborts.
//
// Used only for programming errors at registration time (an invalid metric or
// label name, unsorted histogram buckets, one name registered with two types).
// Those come from constants in code, so they fail on the first run of any test
// that touches the metric; returning a Status would push error handling onto
// every call site for a fault that cannot be handled at run time.
[[noreturn]] void Die(absl::string_view message);

}  // namespace pettube::metrics::internal
