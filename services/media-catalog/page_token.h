#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "services/media-catalog/catalog_storage.pb.h"

namespace pettube::catalog {

// ListMedia page tokens: a PageCursor, serialized and signed with
// HMAC-SHA-256 under the store's secret, so a client can neither forge a
// position nor replay one in another listing. Format:
// base64url(cursor) "." base64url(mac). Immutable, so thread-safe.
class PageTokenCodec {
 public:
  explicit PageTokenCodec(std::string secret) : secret_(std::move(secret)) {}

  std::string Encode(const storage::PageCursor& cursor) const;

  // INVALID_ARGUMENT ("page_token: ...") when the token is malformed, its
  // signature does not match (tampered or forged) or it does not parse.
  absl::StatusOr<storage::PageCursor> Decode(absl::string_view token) const;

 private:
  std::string Mac(absl::string_view payload) const;

  const std::string secret_;
};

}  // namespace pettube::catalog
