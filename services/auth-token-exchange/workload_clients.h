#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace pettube::auth {

// Operator-provisioned internal callers (catalog, coordinator, workers,
// upload) for the client-credentials grant. Secrets are kept only as
// SHA-256 digests and compared in constant time.
// Immutable after Parse; thread-safe.
class WorkloadClients {
 public:
  // A JSON array of {"client_id": ..., "secret_sha256": hex | "secret_file":
  // path, "scopes": [...]}; secret_file (e.g. a mounted Kubernetes Secret)
  // is read and hashed here. INVALID_ARGUMENT names the entry and field.
  static absl::StatusOr<WorkloadClients> Parse(absl::string_view json);

  // The scopes granted to `client_id` for `requested` (empty: all it may
  // have). UNAUTHENTICATED for an unknown client or wrong secret (one
  // message for both, so client ids cannot be probed); PERMISSION_DENIED
  // for a scope the client may not have.
  absl::StatusOr<std::vector<std::string>> Authenticate(
      const std::string& client_id, const std::string& secret,
      const std::vector<std::string>& requested) const;

  // Lower-case hex SHA-256 (for writing configuration).
  static std::string Sha256Hex(absl::string_view data);

 private:
  struct Client {
    std::string secret_digest;  // raw 32 bytes
    std::vector<std::string> scopes;
  };
  absl::flat_hash_map<std::string, Client> clients_;
};

}  // namespace pettube::auth
