#include "services/auth-token-exchange/key_manager.h"

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"
#include "libs/time/proto_time.h"

namespace pettube::auth {
namespace {

std::string NewKid() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("pt-%016x", absl::Uniform<uint64_t>(gen));
}

// The JWKS document publishing the public halves of `keys` (nulls skipped).
absl::StatusOr<std::string> PublicJwks(
    std::initializer_list<std::shared_ptr<const SigningKey>> keys) {
  JwkSet set;
  for (const auto& k : keys) {
    if (k == nullptr) continue;
    auto pub = k->ToPublicKey();
    if (!pub.ok()) return pub.status();
    if (auto s = set.Add(std::move(*pub)); !s.ok()) return s;
  }
  return ToJwksJson(set);
}

}  // namespace

absl::StatusOr<std::unique_ptr<KeyManager>> KeyManager::Open(AuthStore* store,
                                                             absl::Duration rotation_period) {
  std::unique_ptr<KeyManager> km(new KeyManager(store, rotation_period));
  auto records = store->LoadKeys();
  if (!records.ok()) return records.status();
  auto ring = store->LoadKeyRing();
  if (!ring.ok()) return ring.status();
  bool need_rotation = !ring->has_value();
  if (ring->has_value()) {
    absl::MutexLock lock(&km->mu_);
    for (const storage::SigningKeyRecord& r : *records) {
      if (r.kid() != (*ring)->current_kid() && r.kid() != (*ring)->previous_kid()) continue;
      auto key = SigningKey::FromPem(r.private_pem(), r.kid());
      if (!key.ok()) return key.status();
      auto shared = std::make_shared<const SigningKey>(std::move(*key));
      if (r.kid() == (*ring)->current_kid()) {
        km->current_ = std::move(shared);
        km->current_created_ = time::FromProto(r.create_time());
      } else {
        km->previous_ = std::move(shared);
      }
    }
    if (km->current_ == nullptr) {
      return absl::DataLossError("auth store: the current signing key is missing");
    }
    need_rotation = absl::Now() >= km->current_created_ + rotation_period;
  }
  if (need_rotation) {
    if (auto s = km->Rotate(); !s.ok()) return s;
  } else {
    absl::MutexLock lock(&km->mu_);
    auto jwks = PublicJwks({km->current_, km->previous_});
    if (!jwks.ok()) return jwks.status();
    km->jwks_json_ = std::move(*jwks);
  }
  km->rotator_ = std::thread([raw = km.get()] { raw->RotateWhenDue(); });
  return km;
}

KeyManager::~KeyManager() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (rotator_.joinable()) rotator_.join();
}

std::shared_ptr<const SigningKey> KeyManager::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::string KeyManager::JwksJson() const {
  absl::MutexLock lock(&mu_);
  return jwks_json_;
}

std::vector<std::string> KeyManager::KeyIds() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  if (current_ != nullptr) ids.push_back(current_->kid());
  if (previous_ != nullptr) ids.push_back(previous_->kid());
  return ids;
}

absl::Status KeyManager::Rotate() {
  auto generated = SigningKey::Generate(NewKid());
  if (!generated.ok()) return generated.status();
  auto key = std::make_shared<const SigningKey>(std::move(*generated));
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  storage::SigningKeyRecord record;
  record.set_kid(key->kid());
  record.set_private_pem(key->PrivatePem());
  *record.mutable_create_time() = time::ToProto(now);
  storage::KeyRing ring;
  ring.set_current_kid(key->kid());
  if (current_ != nullptr) ring.set_previous_kid(current_->kid());
  // Stored before use: a token is never signed by a key a restart forgets.
  if (auto s = store_->PutKeyAndRing(record, ring); !s.ok()) return s;
  auto jwks = PublicJwks({key, current_});
  if (!jwks.ok()) return jwks.status();
  previous_ = std::move(current_);
  current_ = std::move(key);
  current_created_ = now;
  jwks_json_ = std::move(*jwks);
  log::Info("auth.key_rotated", {{"kid", current_->kid()},
                                 {"previous_kid", previous_ == nullptr ? "" : previous_->kid()}});
  return absl::OkStatus();
}

void KeyManager::RotateWhenDue() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time due = current_created_ + rotation_period_;
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithDeadline(absl::Condition(&stop), due)) return;
    mu_.Unlock();
    const absl::Status s = Rotate();
    mu_.Lock();
    if (!s.ok()) {
      log::Error("auth.key_rotation_failed", {{"code", s}});
      // Try again after a minute rather than spinning on a broken disk.
      current_created_ = absl::Now() - rotation_period_ + absl::Minutes(1);
    }
  }
}

}  // namespace pettube::auth
