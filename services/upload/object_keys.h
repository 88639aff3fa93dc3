#pragma once

// Names and keys of the object store: which buckets exist, what a valid
// key is, and where a media item's objects live.
//
//   originals/{owner}/{media_id}/source          a person's master
//   renditions/{owner}/{media_id}/{file...}      transcode outputs

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace pettube::upload {

inline constexpr absl::string_view kOriginals = "originals";
inline constexpr absl::string_view kRenditions = "renditions";

// Longest key accepted, in bytes, and most '/'-separated segments.
inline constexpr size_t kMaxKeyBytes = 512;
inline constexpr int kMaxKeySegments = 8;

// OK for "originals" and "renditions"; INVALID_ARGUMENT naming `field`
// otherwise.
absl::Status ValidateBucket(absl::string_view field, absl::string_view bucket);

// A key is 1 to kMaxKeySegments segments joined by '/', each of
// [A-Za-z0-9._-]{1,128}, never "." or "..": no absolute path, no empty
// segment, no NUL, no backslash, no traversal, whatever the encoding the
// caller used. INVALID_ARGUMENT naming `field` and the rule broken.
absl::Status ValidateKey(absl::string_view field, absl::string_view key);

// OK for ids made of [A-Za-z0-9_-]{1,64} (identity and media ids).
absl::Status ValidateId(absl::string_view field, absl::string_view id);

// "{owner}/{media_id}/source".
std::string OriginalKey(absl::string_view owner, absl::string_view media_id);
// "{owner}/{media_id}/": every object of one media item, in either bucket.
std::string MediaPrefix(absl::string_view owner, absl::string_view media_id);

// Fresh random ids: 24 and 32 lower-case hex digits.
std::string NewMediaId();
std::string NewUploadId();

}  // namespace pettube::upload
