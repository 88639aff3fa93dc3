#pragma once

// The libFuzzer entry point of jwt_fuzz.cc and the fixed key and clock it
// verifies with, shared with jwt_fuzz_corpus_test so seeds can be real
// tokens.

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace pettube::auth::fuzzing {

// Unencrypted PKCS#8 PEM of the fuzz target's P-256 key, kid "fuzz".
extern const char kKeyPem[];
inline constexpr char kKid[] = "fuzz";
inline constexpr char kIssuer[] = "https://auth.pettube.dev";
inline constexpr char kAudience[] = "pettube";

// The fixed "now" of every run: 2026-11-23T05:10:00Z.
absl::Time Now();

}  // namespace pettube::auth::fuzzing
