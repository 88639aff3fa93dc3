#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/pettube/auth/v1/auth.pb.h"
#include "rocksdb/db.h"
#include "services/auth-token-exchange/auth_storage.pb.h"

namespace pettube::auth {

// auth-token-exchange's durable state in RocksDB: identities ((issuer,
// subject) -> stable PetTube identity, the Cognito GetId step) and signing
// keys. Every write is synced: an identity handed out must never change.
// Thread-safe.
class AuthStore {
 public:
  static absl::StatusOr<std::unique_ptr<AuthStore>> Open(const std::string& dir);
  ~AuthStore();

  // The identity for (issuer, subject), created on first sight with a new
  // random id. Workload identities use issuer "" and the client id.
  absl::StatusOr<v1::Identity> GetOrCreateIdentity(const std::string& issuer,
                                                   const std::string& subject, bool workload)
      ABSL_LOCKS_EXCLUDED(mu_);
  // NOT_FOUND if unknown. `id` is the identity id (not the resource name).
  absl::StatusOr<v1::Identity> GetIdentity(const std::string& id);

  absl::StatusOr<std::vector<storage::SigningKeyRecord>> LoadKeys();
  absl::StatusOr<std::optional<storage::KeyRing>> LoadKeyRing();
  // Stores a new key and the ring naming it, atomically.
  absl::Status PutKeyAndRing(const storage::SigningKeyRecord& key, const storage::KeyRing& ring);

 private:
  AuthStore() = default;
  absl::Status Put(rocksdb::WriteBatch& batch);

  std::unique_ptr<rocksdb::DB> db_;
  // Serializes get-or-create so two first sign-ins can't mint two ids.
  absl::Mutex mu_;
};

}  // namespace pettube::auth
