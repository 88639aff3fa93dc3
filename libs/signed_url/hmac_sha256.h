#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

struct evp_mac_ctx_st;

namespace pettube::signed_url {

// HMAC-SHA-256 under one key, keyed once: OpenSSL's one-shot HMAC() looks
// the algorithm up and pads the key on every call, a few microseconds a
// URL under load. Each Mac copies the keyed context instead. Immutable
// after construction, so thread-safe.
class HmacSha256 {
 public:
  explicit HmacSha256(absl::string_view secret);
  ~HmacSha256();
  HmacSha256(HmacSha256&&) noexcept;
  HmacSha256& operator=(HmacSha256&&) noexcept;

  // The 32-byte MAC of `message`. Falls back to the one-shot HMAC when the
  // keyed context could not be made (only when OpenSSL is out of memory).
  std::string Mac(absl::string_view message) const;

 private:
  std::string secret_;
  evp_mac_ctx_st* keyed_ = nullptr;  // owned; null: use the one-shot path
};

}  // namespace pettube::signed_url
