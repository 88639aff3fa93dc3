#pragma once

// The pettube CLI's documented exit codes, and the one mapping from a
// failure's status to them.

#include "absl/status/status.h"

namespace pettube::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,      // anything else: server refused, network, I/O, FAILED media
  kExitUsage = 2,        // bad command line
  kExitNotSignedIn = 3,  // no credentials, or they expired and cannot be renewed
  kExitNotFound = 4,     // no such media, rendition, file or upload
};

// UNAUTHENTICATED -> 3, NOT_FOUND -> 4, OK -> 0, everything else -> 1.
// (Usage errors are decided by the parser, never from a server's status.)
ExitCode ExitCodeFor(const absl::Status& status);

}  // namespace pettube::cli
