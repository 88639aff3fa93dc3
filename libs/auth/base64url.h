#pragma once

// Unpadded base64url (RFC 4648 section 5), the encoding of every JWS part and
// JWK member (RFC 7515 section 2).
//
//   std::string text = pettube::auth::Base64UrlEncode(bytes);
//   absl::StatusOr<std::string> bytes = pettube::auth::Base64UrlDecode(text);

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pettube::auth {

// Encodes `data` with the URL-safe alphabet and no '=' padding.
std::string Base64UrlEncode(absl::string_view data);

// Decodes unpadded base64url. Strict, because a token must have exactly one
// spelling: INVALID_ARGUMENT on '=' padding, any byte outside [A-Za-z0-9_-]
// (including '+', '/', whitespace), a length that no encoding produces
// (length % 4 == 1) and non-zero unused bits in the last character (which
// would let "AB" and "AC" decode to the same byte).
absl::StatusOr<std::string> Base64UrlDecode(absl::string_view text);

}  // namespace pettube::auth
