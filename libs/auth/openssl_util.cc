#include "libs/auth/openssl_util.h"

#include <openssl/err.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace pettube::auth::internal {

std::string DrainOpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown" : out;
}

absl::StatusOr<std::string> EcdsaDerToJose(absl::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  UniqueEcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (sig == nullptr) {
    return absl::InternalError(
        absl::StrCat("ecdsa: signature DER does not parse: ", DrainOpenSslErrors()));
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(2 * kP256ScalarBytes, '\0');
  auto* buf = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(r, buf, kP256ScalarBytes) < 0 ||
      BN_bn2binpad(s, buf + kP256ScalarBytes, kP256ScalarBytes) < 0) {
    ERR_clear_error();
    return absl::InternalError("ecdsa: r or s is wider than 32 bytes");
  }
  return out;
}

absl::StatusOr<std::string> EcdsaJoseToDer(absl::string_view jose) {
  if (jose.size() != 2 * kP256ScalarBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("ecdsa: signature is ", jose.size(), " bytes, want ", 2 * kP256ScalarBytes));
  }
  const auto* p = reinterpret_cast<const unsigned char*>(jose.data());
  UniqueBignum r(BN_bin2bn(p, kP256ScalarBytes, nullptr));
  UniqueBignum s(BN_bin2bn(p + kP256ScalarBytes, kP256ScalarBytes, nullptr));
  UniqueEcdsaSig sig(ECDSA_SIG_new());
  if (r == nullptr || s == nullptr || sig == nullptr ||
      ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    return absl::InternalError(absl::StrCat("ecdsa: building signature: ", DrainOpenSslErrors()));
  }
  // ECDSA_SIG_set0 took ownership.
  r.release();
  s.release();
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) {
    return absl::InternalError(absl::StrCat("ecdsa: encoding signature: ", DrainOpenSslErrors()));
  }
  std::string der(static_cast<size_t>(len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != len) {
    return absl::InternalError(absl::StrCat("ecdsa: encoding signature: ", DrainOpenSslErrors()));
  }
  return der;
}

std::string BignumBytes(const BIGNUM* bn, size_t width) {
  const size_t n = std::max<size_t>(width, BN_num_bytes(bn));
  std::string out(n, '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n));
  return out;
}

}  // namespace pettube::auth::internal
