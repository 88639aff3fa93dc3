#include "libs/signed_url/hmac_sha256.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include <utility>

namespace pettube::signed_url {

HmacSha256::HmacSha256(absl::string_view secret) : secret_(secret) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return;
  keyed_ = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context holds its own reference
  if (keyed_ == nullptr) return;
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(keyed_, reinterpret_cast<const unsigned char*>(secret_.data()), secret_.size(),
                   params) != 1) {
    EVP_MAC_CTX_free(keyed_);
    keyed_ = nullptr;
  }
}

void HmacSha256::FreeAll() {
  absl::MutexLock lock(&mu_);
  for (EVP_MAC_CTX* ctx : idle_) EVP_MAC_CTX_free(ctx);
  idle_.clear();
  EVP_MAC_CTX_free(keyed_);
  keyed_ = nullptr;
}

HmacSha256::~HmacSha256() { FreeAll(); }

HmacSha256::HmacSha256(HmacSha256&& other) noexcept
    : secret_(std::move(other.secret_)), keyed_(std::exchange(other.keyed_, nullptr)) {
  absl::MutexLock lock(&other.mu_);
  idle_ = std::exchange(other.idle_, {});
}

HmacSha256& HmacSha256::operator=(HmacSha256&& other) noexcept {
  if (this != &other) {
    FreeAll();
    secret_ = std::move(other.secret_);
    keyed_ = std::exchange(other.keyed_, nullptr);
    std::vector<EVP_MAC_CTX*> idle;
    {
      absl::MutexLock lock(&other.mu_);
      idle = std::exchange(other.idle_, {});
    }
    absl::MutexLock lock(&mu_);
    idle_ = std::move(idle);
  }
  return *this;
}

EVP_MAC_CTX* HmacSha256::Take() const {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      EVP_MAC_CTX* ctx = idle_.back();
      idle_.pop_back();
      return ctx;
    }
  }
  return keyed_ == nullptr ? nullptr : EVP_MAC_CTX_dup(keyed_);
}

void HmacSha256::GiveBack(EVP_MAC_CTX* ctx) const {
  absl::MutexLock lock(&mu_);
  idle_.push_back(ctx);
}

std::string HmacSha256::Mac(absl::string_view message) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  const auto* data = reinterpret_cast<const unsigned char*>(message.data());
  if (EVP_MAC_CTX* ctx = Take(); ctx != nullptr) {
    // A null key re-initializes the context with the key it holds.
    size_t len = 0;
    const bool ok = EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1 &&
                    EVP_MAC_update(ctx, data, message.size()) == 1 &&
                    EVP_MAC_final(ctx, out, &len, sizeof(out)) == 1;
    if (ok) {
      GiveBack(ctx);
      return std::string(reinterpret_cast<const char*>(out), len);
    }
    EVP_MAC_CTX_free(ctx);  // in an unknown state: not reused
  }
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()), data, message.size(), out,
       &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace pettube::signed_url
