#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pettube::auth {

// Reads an issuer's JWKS document from a URI: https:// (libcurl, with
// certificate verification), http:// only to loopback (the development
// identity provider), or a local file path / file:// URI.
// Thread-safe.
class JwksFetcher {
 public:
  virtual ~JwksFetcher() = default;
  // UNAVAILABLE when the source cannot be read now (retry later),
  // INVALID_ARGUMENT for a URI we refuse.
  virtual absl::StatusOr<std::string> Fetch(const std::string& uri) = 0;
};

// The real fetcher.
class CurlJwksFetcher : public JwksFetcher {
 public:
  explicit CurlJwksFetcher(absl::Duration timeout = absl::Seconds(5), size_t max_bytes = 1 << 20)
      : timeout_(timeout), max_bytes_(max_bytes) {}
  absl::StatusOr<std::string> Fetch(const std::string& uri) override;

 private:
  absl::Duration timeout_;
  size_t max_bytes_;
};

}  // namespace pettube::auth
