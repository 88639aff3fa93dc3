#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

struct evp_mac_ctx_st;

namespace pettube::signed_url {

// HMAC-SHA-256 under one key, keyed once: OpenSSL's one-shot HMAC() looks
// the algorithm up and pads the key on every call, a few microseconds a
// URL under load. Keyed contexts are kept for reuse: a Mac takes one (or
// copies the first when all are in use), re-initializes it with the key it
// already holds, and gives it back, so a steady load allocates nothing.
// Thread-safe.
class HmacSha256 {
 public:
  explicit HmacSha256(absl::string_view secret);
  ~HmacSha256();
  HmacSha256(HmacSha256&&) noexcept;
  HmacSha256& operator=(HmacSha256&&) noexcept;
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  // The 32-byte MAC of `message`. Falls back to the one-shot HMAC when the
  // keyed context could not be made (only when OpenSSL is out of memory).
  std::string Mac(absl::string_view message) const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A keyed context to use, or null (out of memory).
  evp_mac_ctx_st* Take() const ABSL_LOCKS_EXCLUDED(mu_);
  void GiveBack(evp_mac_ctx_st* ctx) const ABSL_LOCKS_EXCLUDED(mu_);
  void FreeAll();

  std::string secret_;
  evp_mac_ctx_st* keyed_ = nullptr;  // owned; null: use the one-shot path
  // Copies of `keyed_` not in use, at most one per thread that ever
  // computed a MAC at the same time as others.
  mutable absl::Mutex mu_;
  mutable std::vector<evp_mac_ctx_st*> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::signed_url
