// libFuzzer target: arbitrary bytes as a token, through ParseCompact,
// VerifySignature and ValidateClaims one by one and through the whole
// Verifier::Verify, with a fixed key and clock so every crash replays.
//
//   bazel build --config=fuzz //libs/auth:jwt_fuzz
//   bazel-bin/libs/auth/jwt_fuzz -max_total_time=60 CORPUS_DIR
//
// Besides crashes and sanitizer reports it checks two properties: a refusal
// is always UNAUTHENTICATED (a hostile token must not be able to produce an
// INTERNAL that alerts on-call or a code a caller mishandles), and its
// message stays short whatever the input (it ends up in logs).

#include "libs/auth/jwt_fuzz.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "libs/auth/jwk.h"
#include "libs/auth/jwt.h"

namespace pettube::auth::fuzzing {

// Generated once with `openssl genpkey -algorithm EC -pkeyopt
// ec_paramgen_curve:P-256`; it protects nothing.
const char kKeyPem[] = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzHnGxtPPTnu+lOTy
ApzI+IrspGIm5QgR3D+yT6RCF9ehRANCAATU8vIgN5QbM/wSCMzTuxGeIcCbFFrv
s2W4CEPSMAXOAa/GaVb4/92BhYmhhPt55TJ99XPTer3c6pObEDtEUaT4
-----END PRIVATE KEY-----
)";

absl::Time Now() {
  return absl::FromCivil(absl::CivilSecond(2026, 11, 23, 5, 10, 0), absl::UTCTimeZone());
}

namespace {

// The message bound the second property checks.
constexpr size_t kMaxMessageBytes = 512;

[[noreturn]] void Fail(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "jwt_fuzz: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               status.ToString().c_str());
  std::abort();
}

struct Fixture {
  std::unique_ptr<PublicKey> key;
  ValidationPolicy policy;
  std::unique_ptr<Verifier> verifier;
};

// Built once per process: parsing the key per input would drown the
// interesting work.
const Fixture& GetFixture() {
  static const Fixture* const fixture = [] {
    auto* f = new Fixture;
    absl::StatusOr<SigningKey> signing = SigningKey::FromPem(kKeyPem, kKid);
    if (!signing.ok()) Fail("loading the key", signing.status());
    absl::StatusOr<PublicKey> key = signing->ToPublicKey();
    if (!key.ok()) Fail("public key", key.status());
    f->key = std::make_unique<PublicKey>(*std::move(key));
    f->policy.issuers = {kIssuer};
    f->policy.audience = kAudience;
    JwkSet keys;
    absl::StatusOr<PublicKey> again = signing->ToPublicKey();
    if (!again.ok()) Fail("public key", again.status());
    if (absl::Status added = keys.Add(*std::move(again)); !added.ok()) Fail("jwk set", added);
    absl::StatusOr<Verifier> verifier = Verifier::Create(std::move(keys), f->policy);
    if (!verifier.ok()) Fail("verifier", verifier.status());
    f->verifier = std::make_unique<Verifier>(*std::move(verifier));
    return f;
  }();
  return *fixture;
}

void CheckRefusal(absl::string_view stage, const absl::Status& status) {
  if (status.ok()) return;
  if (!absl::IsUnauthenticated(status)) Fail(stage, status);
  if (status.message().size() > kMaxMessageBytes) Fail(stage, status);
}

}  // namespace
}  // namespace pettube::auth::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace auth = ::pettube::auth;
  const auth::fuzzing::Fixture& fixture = auth::fuzzing::GetFixture();
  const absl::string_view token(reinterpret_cast<const char*>(data), size);
  const absl::Time now = auth::fuzzing::Now();

  absl::StatusOr<auth::Jwt> jwt = auth::ParseCompact(token);
  auth::fuzzing::CheckRefusal("ParseCompact", jwt.status());
  if (jwt.ok()) {
    // Run each stage even where Verify would stop earlier, so claims with a
    // bad signature still exercise ValidateClaims.
    auth::fuzzing::CheckRefusal("VerifySignature", auth::VerifySignature(*jwt, *fixture.key));
    auth::fuzzing::CheckRefusal("ValidateClaims",
                                auth::ValidateClaims(jwt->claims, fixture.policy, now));
  }
  auth::fuzzing::CheckRefusal("Verify", fixture.verifier->Verify(token, now).status());
  return 0;
}
