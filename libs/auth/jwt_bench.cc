// Cost of verifying and signing access tokens, against bare OpenSSL.
//
//   bazel run --config=opt //libs/auth:jwt_bench
//
// The target: BM_VerifierVerify (parse, kid lookup, JOSE->DER, ES256 verify,
// claim checks) within 1.5x of BM_BareEs256Verify (EVP_DigestVerify alone,
// same key, message and signature).

#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "libs/auth/jwk.h"
#include "libs/auth/jwt.h"
#include "libs/auth/openssl_util.h"

namespace pettube::auth {
namespace {

using json = nlohmann::json;

template <typename T>
T OrDie(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "jwt_bench: %s\n", value.status().ToString().c_str());
    std::abort();
  }
  return *std::move(value);
}

// One key, one access token and one verifier, built before any timing.
struct Fixture {
  Fixture() {
    now = absl::FromUnixSeconds(1795410600);  // 2026-11-23T05:10:00Z
    key = std::make_unique<SigningKey>(OrDie(SigningKey::Generate("at-2026-11")));
    // Shaped like the access tokens auth-token-exchange issues.
    claims = {
        {"iss", "https://auth.pettube.dev"},
        {"aud", "pettube"},
        {"sub", "google-oauth2|104857264849361947213"},
        {"iat", absl::ToUnixSeconds(now) - 60},
        {"nbf", absl::ToUnixSeconds(now) - 60},
        {"exp", absl::ToUnixSeconds(now) + 840},
        {"jti", "7c9e6679-7425-40de-944b-e07fc1f90ae7"},
        {"email", "pet.owner@example.com"},
        {"scope", "videos:read videos:upload comments:write"},
        {"tenant", "pettube-prod"},
    };
    token = OrDie(SignCompact(claims, *key));
    Jwt jwt = OrDie(ParseCompact(token));
    signing_input = jwt.signing_input;
    der_signature = OrDie(internal::EcdsaJoseToDer(jwt.signature));

    JwkSet keys;
    public_key = std::make_unique<PublicKey>(OrDie(key->ToPublicKey()));
    if (!keys.Add(OrDie(key->ToPublicKey())).ok()) std::abort();
    ValidationPolicy policy;
    policy.issuers = {"https://auth.pettube.dev"};
    policy.audience = "pettube";
    policy.max_lifetime = absl::Minutes(15);
    verifier = std::make_unique<Verifier>(OrDie(Verifier::Create(std::move(keys), policy)));
  }

  absl::Time now;
  std::unique_ptr<SigningKey> key;
  std::unique_ptr<PublicKey> public_key;
  json claims;
  std::string token;
  std::string signing_input;
  std::string der_signature;
  std::unique_ptr<Verifier> verifier;
};

const Fixture& GetFixture() {
  static const Fixture* const fixture = new Fixture;
  return *fixture;
}

void BM_BareEs256Verify(benchmark::State& state) {
  const Fixture& f = GetFixture();
  EVP_PKEY* pkey = f.public_key->pkey();
  const auto* sig = reinterpret_cast<const unsigned char*>(f.der_signature.data());
  const auto* msg = reinterpret_cast<const unsigned char*>(f.signing_input.data());
  for (auto _ : state) {
    internal::UniqueEvpMdCtx ctx(EVP_MD_CTX_new());
    int ok = EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey);
    if (ok == 1) {
      ok = EVP_DigestVerify(ctx.get(), sig, f.der_signature.size(), msg, f.signing_input.size());
    }
    if (ok != 1) state.SkipWithError("EVP_DigestVerify failed");
    benchmark::DoNotOptimize(ok);
  }
}
BENCHMARK(BM_BareEs256Verify);

void BM_VerifierVerify(benchmark::State& state) {
  const Fixture& f = GetFixture();
  state.counters["token_bytes"] = static_cast<double>(f.token.size());
  for (auto _ : state) {
    absl::StatusOr<json> claims = f.verifier->Verify(f.token, f.now);
    if (!claims.ok()) state.SkipWithError(claims.status().ToString().c_str());
    benchmark::DoNotOptimize(claims);
  }
}
BENCHMARK(BM_VerifierVerify);

// The non-crypto part of Verify: split, base64url, two JSON parses.
void BM_ParseCompact(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    absl::StatusOr<Jwt> jwt = ParseCompact(f.token);
    benchmark::DoNotOptimize(jwt);
  }
}
BENCHMARK(BM_ParseCompact);

void BM_Es256Sign(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    absl::StatusOr<std::string> sig = f.key->Sign(f.signing_input);
    benchmark::DoNotOptimize(sig);
  }
}
BENCHMARK(BM_Es256Sign);

// Issuing a whole token: two JSON dumps, base64url, sign.
void BM_SignCompact(benchmark::State& state) {
  const Fixture& f = GetFixture();
  for (auto _ : state) {
    absl::StatusOr<std::string> token = SignCompact(f.claims, *f.key);
    benchmark::DoNotOptimize(token);
  }
}
BENCHMARK(BM_SignCompact);

}  // namespace
}  // namespace pettube::auth

BENCHMARK_MAIN();
