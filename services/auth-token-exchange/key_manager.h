#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/jwk.h"
#include "services/auth-token-exchange/auth_store.h"

namespace pettube::auth {

// Our token-signing keys: a current ES256 key that signs and the previous
// one, still published so tokens signed before a rotation verify until they
// expire. Keys rotate every `rotation_period` (a real deadline: one thread
// sleeps until then) and survive restarts in the AuthStore.
// Thread-safe.
class KeyManager {
 public:
  // Loads the ring, generating the first key or rotating an overdue one.
  static absl::StatusOr<std::unique_ptr<KeyManager>> Open(AuthStore* store,
                                                          absl::Duration rotation_period);
  ~KeyManager();

  std::shared_ptr<const SigningKey> Current() const ABSL_LOCKS_EXCLUDED(mu_);
  // {"keys": [current, previous]} as served at /.well-known/jwks.json.
  std::string JwksJson() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<std::string> KeyIds() const ABSL_LOCKS_EXCLUDED(mu_);

  // Makes a new current key; the current one becomes previous.
  absl::Status Rotate() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  KeyManager(AuthStore* store, absl::Duration rotation_period)
      : store_(store), rotation_period_(rotation_period) {}
  void RotateWhenDue();

  AuthStore* const store_;
  const absl::Duration rotation_period_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const SigningKey> current_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const SigningKey> previous_ ABSL_GUARDED_BY(mu_);
  absl::Time current_created_ ABSL_GUARDED_BY(mu_);
  std::string jwks_json_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread rotator_;
};

}  // namespace pettube::auth
