#include "services/auth-token-exchange/auth_store.h"

#include <filesystem>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "libs/storage/rocksdb_status.h"
#include "libs/time/proto_time.h"
#include "rocksdb/write_batch.h"

namespace pettube::auth {
namespace {

constexpr char kSubjectPrefix[] = "subject/";    // issuer \0 subject -> identity id
constexpr char kIdentityPrefix[] = "identity/";  // id -> Identity
constexpr char kKeyPrefix[] = "key/";            // kid -> SigningKeyRecord
constexpr char kKeyRingKey[] = "keyring";

std::string NewIdentityId() {
  // 128 random bits: ids are not guessable, so they leak nothing about
  // sign-up order or counts.
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AuthStore>> AuthStore::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("auth store ", dir, ": ", ec.message()));
  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_background_jobs = 1;
  options.info_log_level = rocksdb::WARN_LEVEL;
  options.keep_log_file_num = 2;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) return pettube::storage::FromRocksDb(s, absl::StrCat("open auth store ", dir));
  auto store = std::unique_ptr<AuthStore>(new AuthStore());
  store->db_.reset(db);
  return store;
}

AuthStore::~AuthStore() {
  if (db_ != nullptr) db_->Close();
}

absl::Status AuthStore::Put(rocksdb::WriteBatch& batch) {
  rocksdb::WriteOptions options;
  options.sync = true;
  return pettube::storage::FromRocksDb(db_->Write(options, &batch), "write");
}

absl::StatusOr<v1::Identity> AuthStore::GetOrCreateIdentity(const std::string& issuer,
                                                            const std::string& subject,
                                                            bool workload) {
  const std::string subject_key =
      absl::StrCat(kSubjectPrefix, issuer, absl::string_view("\0", 1), subject);
  absl::MutexLock lock(&mu_);
  std::string id;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), subject_key, &id);
  if (s.ok()) return GetIdentity(id);
  if (!s.IsNotFound()) return pettube::storage::FromRocksDb(s, "read identity");
  v1::Identity identity;
  id = NewIdentityId();
  identity.set_name(absl::StrCat("identities/", id));
  identity.set_issuer(issuer);
  identity.set_subject(subject);
  identity.set_workload(workload);
  *identity.mutable_create_time() = time::ToProto(absl::Now());
  rocksdb::WriteBatch batch;
  batch.Put(subject_key, id);
  batch.Put(absl::StrCat(kIdentityPrefix, id), identity.SerializeAsString());
  if (auto st = Put(batch); !st.ok()) return st;
  return identity;
}

absl::StatusOr<v1::Identity> AuthStore::GetIdentity(const std::string& id) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), absl::StrCat(kIdentityPrefix, id), &value);
  if (s.IsNotFound()) return absl::NotFoundError(absl::StrCat("identity ", id, " does not exist"));
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "read identity");
  v1::Identity identity;
  if (!identity.ParseFromString(value)) return absl::DataLossError("identity: unreadable record");
  return identity;
}

absl::StatusOr<std::vector<storage::SigningKeyRecord>> AuthStore::LoadKeys() {
  std::vector<storage::SigningKeyRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(kKeyPrefix); it->Valid() && it->key().starts_with(kKeyPrefix); it->Next()) {
    storage::SigningKeyRecord r;
    if (!r.ParseFromArray(it->value().data(), it->value().size())) {
      return absl::DataLossError("signing key: unreadable record");
    }
    out.push_back(std::move(r));
  }
  if (auto s = pettube::storage::FromRocksDb(it->status(), "load keys"); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::optional<storage::KeyRing>> AuthStore::LoadKeyRing() {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kKeyRingKey, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return pettube::storage::FromRocksDb(s, "read key ring");
  storage::KeyRing ring;
  if (!ring.ParseFromString(value)) return absl::DataLossError("key ring: unreadable record");
  return ring;
}

absl::Status AuthStore::PutKeyAndRing(const storage::SigningKeyRecord& key,
                                      const storage::KeyRing& ring) {
  rocksdb::WriteBatch batch;
  batch.Put(absl::StrCat(kKeyPrefix, key.kid()), key.SerializeAsString());
  batch.Put(kKeyRingKey, ring.SerializeAsString());
  return Put(batch);
}

}  // namespace pettube::auth
