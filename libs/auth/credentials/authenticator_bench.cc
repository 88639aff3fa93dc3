// The server-side check's cost per call (warm key cache) against the bare
// ES256 signature verification it contains, measured in the same run.
//   bazel run --config=opt //libs/auth/credentials:authenticator_bench
#include <openssl/evp.h>

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "libs/auth/credentials/authenticator.h"
#include "libs/auth/jwk.h"
#include "libs/auth/jwt.h"

namespace pettube::auth {
namespace {

// What Verify must do at least: one EVP ES256 verification of a token-sized
// message, key already parsed.
void BM_BareEs256Verify(benchmark::State& state) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  const std::string message(300, 'x');  // ~ header.payload of an access token
  unsigned char sig[128];
  size_t sig_len = sizeof(sig);
  EVP_MD_CTX* sign = EVP_MD_CTX_new();
  EVP_DigestSignInit(sign, nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(sign, sig, &sig_len, reinterpret_cast<const unsigned char*>(message.data()),
                 message.size());
  EVP_MD_CTX_free(sign);
  for (auto _ : state) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key);
    const int ok = EVP_DigestVerify(
        ctx, sig, sig_len, reinterpret_cast<const unsigned char*>(message.data()), message.size());
    EVP_MD_CTX_free(ctx);
    if (ok != 1) state.SkipWithError("verify failed");
  }
  EVP_PKEY_free(key);
}
BENCHMARK(BM_BareEs256Verify);

// The full check a service runs per call: parse, find the key, verify,
// validate claims, build the Caller.
void BM_AuthenticatorAuthenticateToken(benchmark::State& state) {
  auto key = SigningKey::Generate("k1");
  JwkSet set;
  (void)set.Add(*key->ToPublicKey());
  const std::string jwks = ToJwksJson(set);
  Authenticator auth({"pettube-auth", "pettube", absl::Seconds(10)},
                     [&]() -> absl::StatusOr<std::string> { return jwks; });
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  const std::string token = *SignCompact({{"iss", "pettube-auth"},
                                          {"aud", "pettube"},
                                          {"sub", "0123456789abcdef0123456789abcdef"},
                                          {"iat", now},
                                          {"nbf", now},
                                          {"exp", now + 900},
                                          {"jti", "fedcba9876543210fedcba9876543210"},
                                          {"scope", "media.upload media.read media.write"}},
                                         *key);
  if (!auth.AuthenticateToken(token).ok()) state.SkipWithError("token does not verify");
  for (auto _ : state) {
    auto caller = auth.AuthenticateToken(token);
    benchmark::DoNotOptimize(caller);
  }
  state.counters["token_bytes"] = static_cast<double>(token.size());
}
BENCHMARK(BM_AuthenticatorAuthenticateToken);

}  // namespace
}  // namespace pettube::auth

BENCHMARK_MAIN();
