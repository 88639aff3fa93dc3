// The low-level SHA256_* functions are deprecated in OpenSSL 3 in favour of
// EVP, but EVP digest contexts cannot be saved and restored; the plain
// SHA256_CTX struct can. OpenSSL still ships and tests these functions.
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "services/upload/sha256_state.h"

#include <openssl/sha.h>

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace pettube::upload {

static_assert(sizeof(SHA256_CTX) <= 112, "SHA256_CTX must fit in Sha256State::ctx_");

namespace {
SHA256_CTX* Ctx(unsigned char* bytes) { return reinterpret_cast<SHA256_CTX*>(bytes); }
const SHA256_CTX* Ctx(const unsigned char* bytes) {
  return reinterpret_cast<const SHA256_CTX*>(bytes);
}
}  // namespace

Sha256State::Sha256State() {
  std::memset(ctx_, 0, sizeof(ctx_));
  SHA256_Init(Ctx(ctx_));
}

absl::StatusOr<Sha256State> Sha256State::Restore(absl::string_view saved) {
  if (saved.size() != sizeof(SHA256_CTX)) {
    return absl::InvalidArgumentError(absl::StrCat("sha256 state: want ", sizeof(SHA256_CTX),
                                                   " bytes, got ", saved.size()));
  }
  Sha256State s;
  std::memcpy(s.ctx_, saved.data(), saved.size());
  return s;
}

void Sha256State::Update(absl::string_view data) {
  SHA256_Update(Ctx(ctx_), data.data(), data.size());
}

std::string Sha256State::Save() const {
  return std::string(reinterpret_cast<const char*>(ctx_), sizeof(SHA256_CTX));
}

std::string Sha256State::HexDigest() const {
  SHA256_CTX copy = *Ctx(ctx_);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(digest, &copy);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

}  // namespace pettube::upload
