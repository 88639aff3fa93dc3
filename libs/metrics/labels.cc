#include "libs/metrics/labels.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace pettube::metrics {
namespace {

bool IsValidName(absl::string_view name, bool allow_colon) {
  if (name.empty() || absl::StartsWith(name, "__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = absl::ascii_isalpha(c) || c == '_' ||
                    (allow_colon && c == ':') ||
                    (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool IsValidMetricName(absl::string_view name) {
  return IsValidName(name, /*allow_colon=*/true);
}

bool IsValidLabelName(absl::string_view name) {
  return IsValidName(name, /*allow_colon=*/false);
}

}  // namespace pettube::metrics
