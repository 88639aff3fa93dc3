#include "libs/auth/test_keys.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "libs/auth/base64url.h"
#include "libs/auth/openssl_util.h"

namespace pettube::auth::testing {

namespace {

[[noreturn]] void Die(absl::string_view what) {
  std::cerr << "test_keys: " << what << ": " << internal::DrainOpenSslErrors() << "\n";
  std::abort();
}

std::string BnParam(EVP_PKEY* pkey, const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) Die(name);
  internal::UniqueBignum bn(raw);
  return internal::BignumBytes(bn.get());
}

}  // namespace

UniqueEvpPkey GenerateRsaKey(int bits) {
  UniqueEvpPkey pkey(EVP_RSA_gen(static_cast<unsigned int>(bits)));
  if (pkey == nullptr) Die("EVP_RSA_gen");
  return pkey;
}

nlohmann::json RsaPublicJwk(EVP_PKEY* rsa, absl::string_view kid) {
  return {
      {"kty", "RSA"},
      {"alg", "RS256"},
      {"use", "sig"},
      {"kid", std::string(kid)},
      {"n", Base64UrlEncode(BnParam(rsa, OSSL_PKEY_PARAM_RSA_N))},
      {"e", Base64UrlEncode(BnParam(rsa, OSSL_PKEY_PARAM_RSA_E))},
  };
}

std::string Rs256Sign(EVP_PKEY* rsa, absl::string_view data) {
  internal::UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, rsa) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    Die("EVP_DigestSignInit");
  }
  std::string sig(static_cast<size_t>(EVP_PKEY_get_size(rsa)), '\0');
  size_t len = sig.size();
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    Die("EVP_DigestSign");
  }
  sig.resize(len);
  return sig;
}

std::string HmacSha256(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, sizeof(out),
                &len) == nullptr) {
    Die("EVP_Q_mac");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string PublicKeyPem(EVP_PKEY* pkey) {
  internal::UniqueBio bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PUBKEY(bio.get(), pkey) != 1) Die("PEM_write_bio_PUBKEY");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string SigningInput(const nlohmann::json& header, const nlohmann::json& claims) {
  return absl::StrCat(Base64UrlEncode(header.dump()), ".", Base64UrlEncode(claims.dump()));
}

std::string Compact(absl::string_view signing_input, absl::string_view signature) {
  return absl::StrCat(signing_input, ".", Base64UrlEncode(signature));
}

}  // namespace pettube::auth::testing
