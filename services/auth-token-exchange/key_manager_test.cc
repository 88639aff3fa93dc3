#include "services/auth-token-exchange/key_manager.h"

#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/jwt.h"

namespace pettube::auth {
namespace {

class KeyManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/keys-", ++counter_);
    Open();
  }
  void Open() {
    keys_.reset();
    store_.reset();
    auto store = AuthStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto keys = KeyManager::Open(store_.get(), absl::Hours(24));
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = std::move(*keys);
  }
  // Verifies `token` against the keys currently published.
  absl::Status VerifyWithPublished(const std::string& token) {
    auto set = ParseJwks(keys_->JwksJson());
    if (!set.ok()) return set.status();
    auto verifier = Verifier::Create(std::move(*set), {{"pettube-auth"}, "pettube"});
    if (!verifier.ok()) return verifier.status();
    return verifier->Verify(token, absl::Now()).status();
  }
  std::string Sign(const SigningKey& key) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    return *SignCompact({{"iss", "pettube-auth"},
                         {"aud", "pettube"},
                         {"sub", "x"},
                         {"iat", now},
                         {"exp", now + 900}},
                        key);
  }

  static int counter_;
  std::string dir_;
  std::unique_ptr<AuthStore> store_;
  std::unique_ptr<KeyManager> keys_;
};

int KeyManagerTest::counter_ = 0;

TEST_F(KeyManagerTest, RotationPublishesCurrentAndPreviousAndDropsOlder) {
  auto first = keys_->Current();
  ASSERT_EQ(keys_->KeyIds().size(), 1u);
  const std::string old_token = Sign(*first);
  ASSERT_TRUE(keys_->Rotate().ok());
  auto second = keys_->Current();
  EXPECT_NE(second->kid(), first->kid());
  EXPECT_EQ(keys_->KeyIds(), (std::vector<std::string>{second->kid(), first->kid()}));
  // A token signed before the rotation still verifies until it expires.
  EXPECT_TRUE(VerifyWithPublished(old_token).ok());
  EXPECT_TRUE(VerifyWithPublished(Sign(*second)).ok());
  ASSERT_TRUE(keys_->Rotate().ok());
  // Two rotations later the first key is no longer published.
  const absl::Status gone = VerifyWithPublished(old_token);
  EXPECT_EQ(gone.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(IsUnknownKeyId(gone)) << gone;
}

TEST_F(KeyManagerTest, KeysSurviveARestart) {
  ASSERT_TRUE(keys_->Rotate().ok());
  const std::vector<std::string> before = keys_->KeyIds();
  const std::string token = Sign(*keys_->Current());
  Open();
  EXPECT_EQ(keys_->KeyIds(), before);
  EXPECT_TRUE(VerifyWithPublished(token).ok());
}

}  // namespace
}  // namespace pettube::auth
