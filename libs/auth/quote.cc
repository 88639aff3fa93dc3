#include "libs/auth/quote.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace pettube::auth {

namespace {
constexpr size_t kMaxQuotedBytes = 64;
}  // namespace

std::string Quote(absl::string_view untrusted) {
  if (untrusted.size() <= kMaxQuotedBytes) {
    return absl::StrCat("\"", absl::CHexEscape(untrusted), "\"");
  }
  return absl::StrCat("\"", absl::CHexEscape(untrusted.substr(0, kMaxQuotedBytes)), "...\"");
}

}  // namespace pettube::auth
