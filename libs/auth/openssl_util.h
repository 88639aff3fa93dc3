#pragma once

// Internal to //libs/auth: RAII owners for OpenSSL objects and the ECDSA
// signature conversions JOSE needs. Not part of the public API.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pettube::auth::internal {

// unique_ptr deleter calling an OpenSSL free function.
template <auto kFree>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* object) const {
    kFree(object);
  }
};

using UniqueBignum = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using UniqueBio = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using UniqueEcdsaSig = std::unique_ptr<ECDSA_SIG, OpenSslDeleter<ECDSA_SIG_free>>;
using UniqueEvpMdCtx = std::unique_ptr<EVP_MD_CTX, OpenSslDeleter<EVP_MD_CTX_free>>;
using UniqueEvpPkeyCtx = std::unique_ptr<EVP_PKEY_CTX, OpenSslDeleter<EVP_PKEY_CTX_free>>;
using UniqueOsslParamBld = std::unique_ptr<OSSL_PARAM_BLD, OpenSslDeleter<OSSL_PARAM_BLD_free>>;
using UniqueOsslParams = std::unique_ptr<OSSL_PARAM, OpenSslDeleter<OSSL_PARAM_free>>;

// Empties this thread's OpenSSL error queue and returns its entries joined by
// "; " ("unknown" if it was empty). Every failed OpenSSL call must be followed
// by this or ERR_clear_error(): a stale entry would otherwise surface in an
// unrelated later call on the same thread (e.g. a gRPC TLS handshake).
std::string DrainOpenSslErrors();

// Width of each of r and s in a JOSE ES256 signature (RFC 7518 section 3.4).
inline constexpr size_t kP256ScalarBytes = 32;

// ECDSA signature from OpenSSL's DER SEQUENCE{r, s} to JOSE's fixed-width
// big-endian r || s (64 bytes for P-256). INTERNAL if `der` does not parse
// (OpenSSL produced it, so that is our bug) or r/s do not fit.
absl::StatusOr<std::string> EcdsaDerToJose(absl::string_view der);

// JOSE r || s (exactly 64 bytes) to DER for EVP_DigestVerify.
// INVALID_ARGUMENT if the size is wrong.
absl::StatusOr<std::string> EcdsaJoseToDer(absl::string_view jose);

// Big-endian bytes of `bn`, left-padded with zeros to `width` (0: minimal).
std::string BignumBytes(const BIGNUM* bn, size_t width = 0);

}  // namespace pettube::auth::internal
