#pragma once

// SHA-256 whose running state can be saved and restored, so a resumable
// upload hashes each byte once, as it streams in, even across a restart of
// the service: the state is stored with the committed offset.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pettube::upload {

// Not thread-safe; one per upload stream.
class Sha256State {
 public:
  Sha256State();

  // From Save()'s bytes. INVALID_ARGUMENT for bytes of another size.
  static absl::StatusOr<Sha256State> Restore(absl::string_view saved);

  void Update(absl::string_view data);
  // The opaque state after the bytes so far.
  std::string Save() const;
  // Lower-case hex digest of the bytes so far (the state is not changed).
  std::string HexDigest() const;

 private:
  // OpenSSL's SHA256_CTX, kept as bytes so this header needs no OpenSSL.
  alignas(8) unsigned char ctx_[112];
};

}  // namespace pettube::upload
