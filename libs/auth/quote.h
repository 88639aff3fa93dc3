#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace pettube::auth {

// Renders an untrusted string (a kid, an issuer, an alg taken from a token or
// a JWKS) for an error message: double-quoted, C-escaped so control bytes and
// quotes cannot forge log fields, and cut after 64 bytes with "..." so a
// hostile token cannot make a megabyte-long status.
std::string Quote(absl::string_view untrusted);

}  // namespace pettube::auth
