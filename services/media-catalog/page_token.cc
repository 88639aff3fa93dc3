#include "services/media-catalog/page_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/base64url.h"

namespace pettube::catalog {

std::string PageTokenCodec::Mac(absl::string_view payload) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

std::string PageTokenCodec::Encode(const storage::PageCursor& cursor) const {
  const std::string payload = cursor.SerializeAsString();
  return absl::StrCat(auth::Base64UrlEncode(payload), ".", auth::Base64UrlEncode(Mac(payload)));
}

absl::StatusOr<storage::PageCursor> PageTokenCodec::Decode(absl::string_view token) const {
  if (token.size() > 4096) {
    return absl::InvalidArgumentError("page_token: longer than any token this server issues");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 2) {
    return absl::InvalidArgumentError("page_token: malformed (not a token this server issued)");
  }
  auto payload = auth::Base64UrlDecode(parts[0]);
  auto mac = auth::Base64UrlDecode(parts[1]);
  if (!payload.ok() || !mac.ok()) {
    return absl::InvalidArgumentError("page_token: malformed (not base64url)");
  }
  const std::string expected = Mac(*payload);
  if (mac->size() != expected.size() ||
      CRYPTO_memcmp(mac->data(), expected.data(), expected.size()) != 0) {
    return absl::InvalidArgumentError("page_token: signature does not match (tampered or forged)");
  }
  storage::PageCursor cursor;
  if (!cursor.ParseFromString(*payload)) {
    return absl::InvalidArgumentError("page_token: does not parse");
  }
  return cursor;
}

}  // namespace pettube::catalog
