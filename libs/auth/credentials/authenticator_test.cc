#include "libs/auth/credentials/authenticator.h"

#include <memory>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/jwk.h"
#include "libs/auth/jwt.h"

namespace pettube::auth {
namespace {

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    k1_ = std::make_unique<SigningKey>(*SigningKey::Generate("k1"));
    k2_ = std::make_unique<SigningKey>(*SigningKey::Generate("k2"));
    Publish({k1_.get()});
  }

  void Publish(std::vector<const SigningKey*> keys) {
    JwkSet set;
    for (const SigningKey* k : keys) ASSERT_TRUE(set.Add(*k->ToPublicKey()).ok());
    jwks_ = ToJwksJson(set);
  }

  std::unique_ptr<Authenticator> Make(absl::Duration min_refresh) {
    return std::make_unique<Authenticator>(
        Authenticator::Options{"pettube-auth", "pettube", min_refresh},
        [this]() -> absl::StatusOr<std::string> {
          ++fetches_;
          return jwks_;
        });
  }

  std::string Token(const SigningKey& key, const std::string& scope,
                    absl::Duration ttl = absl::Minutes(15)) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    nlohmann::json claims = {{"iss", "pettube-auth"},
                             {"aud", "pettube"},
                             {"sub", "id-1"},
                             {"iat", now},
                             {"nbf", now},
                             {"exp", now + absl::ToInt64Seconds(ttl)},
                             {"jti", "t1"},
                             {"scope", scope}};
    return *SignCompact(claims, key);
  }

  std::unique_ptr<SigningKey> k1_, k2_;
  std::string jwks_;
  int fetches_ = 0;
};

TEST_F(AuthenticatorTest, ValidTokenYieldsTheCallerAndScopes) {
  auto auth = Make(absl::Seconds(10));
  auto caller = auth->AuthenticateToken(Token(*k1_, "media.read media.upload"));
  ASSERT_TRUE(caller.ok()) << caller.status();
  EXPECT_EQ(caller->identity, "id-1");
  EXPECT_TRUE(caller->HasScope("media.upload"));
  EXPECT_FALSE(caller->HasScope("media.write"));
  EXPECT_EQ(caller->token_id, "t1");
  // Warm: no fetch per request.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
  EXPECT_EQ(fetches_, 1);
}

TEST_F(AuthenticatorTest, RotatedKeyIsPickedUpByOneRefresh) {
  auto auth = Make(absl::ZeroDuration());
  ASSERT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
  Publish({k2_.get(), k1_.get()});
  ASSERT_TRUE(auth->AuthenticateToken(Token(*k2_, "x")).ok());
  EXPECT_EQ(fetches_, 2);
  ASSERT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());  // previous key still valid
  EXPECT_EQ(fetches_, 2);
}

TEST_F(AuthenticatorTest, UnknownKeyRefreshIsRateLimited) {
  auto auth = Make(absl::Hours(1));
  ASSERT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
  for (int i = 0; i < 5; ++i) {
    auto r = auth->AuthenticateToken(Token(*k2_, "x"));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  }
  EXPECT_EQ(fetches_, 1);
}

TEST_F(AuthenticatorTest, ExpiredTokenIsRefusedWithTheReason) {
  auto auth = Make(absl::Seconds(10));
  auto r = auth->AuthenticateToken(Token(*k1_, "x", -absl::Hours(1)));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(r.status().message().find("expired"), absl::string_view::npos) << r.status();
}

TEST_F(AuthenticatorTest, UnreachableKeysAreUnavailableNotUnauthenticated) {
  Authenticator auth(
      {"pettube-auth", "pettube", absl::Seconds(10)},
      []() -> absl::StatusOr<std::string> { return absl::UnavailableError("connection refused"); });
  EXPECT_EQ(auth.AuthenticateToken(Token(*k1_, "x")).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace pettube::auth
