#include "services/upload/object_keys.h"

#include <vector>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace pettube::upload {
namespace {

bool IsSegmentChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

std::string RandomHex(int words) {
  thread_local absl::BitGen gen;
  std::string out;
  for (int i = 0; i < words; ++i) {
    absl::StrAppend(&out, absl::StrFormat("%08x", absl::Uniform<uint32_t>(gen)));
  }
  return out;
}

}  // namespace

absl::Status ValidateBucket(absl::string_view field, absl::string_view bucket) {
  if (bucket == kOriginals || bucket == kRenditions) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, ": must be \"originals\" or \"renditions\""));
}

absl::Status ValidateKey(absl::string_view field, absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  if (key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": longer than ", kMaxKeyBytes, " bytes"));
  }
  std::vector<absl::string_view> segments = absl::StrSplit(key, '/');
  if (segments.size() > kMaxKeySegments) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": more than ", kMaxKeySegments, " segments"));
  }
  for (absl::string_view s : segments) {
    if (s.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": empty segment (leading, trailing or double '/')"));
    }
    if (s == "." || s == "..") {
      return absl::InvalidArgumentError(absl::StrCat(field, ": \".\" and \"..\" are not allowed"));
    }
    if (s.size() > 128) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": segment longer than 128 bytes"));
    }
    for (char c : s) {
      if (!IsSegmentChar(c)) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": only [A-Za-z0-9._-] and '/' are allowed"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateId(absl::string_view field, absl::string_view id) {
  if (id.empty() || id.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be 1-64 characters"));
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(field, ": only [A-Za-z0-9_-] are allowed"));
    }
  }
  return absl::OkStatus();
}

std::string OriginalKey(absl::string_view owner, absl::string_view media_id) {
  return absl::StrCat(owner, "/", media_id, "/source");
}

std::string MediaPrefix(absl::string_view owner, absl::string_view media_id) {
  return absl::StrCat(owner, "/", media_id, "/");
}

std::string NewMediaId() { return RandomHex(3); }
std::string NewUploadId() { return RandomHex(4); }

}  // namespace pettube::upload
