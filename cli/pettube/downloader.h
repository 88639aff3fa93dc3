#pragma once

// Downloads a URL (a signed rendition URL) to a file with HTTP Range
// resume: bytes go to FILE.part; a rerun asks for the rest with
// `Range: bytes=N-`; when complete (and the SHA-256 matches, if known) the
// part file is renamed to FILE.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"

namespace pettube::cli {

struct DownloadCallbacks {
  // Bytes already in the part file, and the total when the server says.
  std::function<void(int64_t start_offset, int64_t total)> on_start;
  std::function<void(int64_t done)> on_progress;
};

// `expected_sha256` (lower-case hex) and `expected_size` are checked when
// non-empty / positive. Codes: NOT_FOUND (HTTP 404), PERMISSION_DENIED
// (401/403: an expired or wrong signature), DATA_LOSS (checksum or size
// mismatch: the part file is removed), UNAVAILABLE (network).
absl::Status DownloadToFile(const std::string& url, const std::string& path,
                            const std::string& expected_sha256, int64_t expected_size,
                            const DownloadCallbacks& callbacks);

}  // namespace pettube::cli
