#include "libs/auth/credentials/authenticator.h"

#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/jwk.h"
#include "libs/auth/jwt.h"
#include "libs/time/fake_clock.h"

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
    absl::MutexLock lock(&mu_);
    jwks_ = ToJwksJson(set);
  }

  // The source serves jwks_ and counts fetches; `before_fetch(n)`, if set,
  // runs first on the n-th fetch (1-based) and may fail it.
  std::unique_ptr<Authenticator> Make(Authenticator::Options options) {
    return std::make_unique<Authenticator>(options, [this]() -> absl::StatusOr<std::string> {
      int n;
      {
        absl::MutexLock lock(&mu_);
        n = ++fetches_;
      }
      if (before_fetch_) {
        if (absl::Status s = before_fetch_(n); !s.ok()) return s;
      }
      absl::MutexLock lock(&mu_);
      return jwks_;
    });
  }
  std::unique_ptr<Authenticator> Make(absl::Duration min_refresh) {
    return Make(Authenticator::Options{"pettube-auth", "pettube", min_refresh});
  }

  // Options on fake time, so the scheduled refresh runs only when a test
  // moves the clock.
  Authenticator::Options FakeTimeOptions(absl::Duration min_refresh) {
    Authenticator::Options options;
    options.min_refresh_interval = min_refresh;
    options.clock = &clock_;
    options.on_key_wait = [this] {
      absl::MutexLock lock(&mu_);
      ++key_waits_;
    };
    return options;
  }

  int fetches() {
    absl::MutexLock lock(&mu_);
    return fetches_;
  }
  void AwaitFetches(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return fetches_ >= n; };
    mu_.Await(absl::Condition(&reached));
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
  // Tokens are signed at real time: the fake clock starts there.
  time::FakeClock clock_{absl::Now()};
  absl::Mutex mu_;
  std::string jwks_ ABSL_GUARDED_BY(mu_);
  int fetches_ ABSL_GUARDED_BY(mu_) = 0;
  int key_waits_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<absl::Status(int)> before_fetch_;  // set before Make
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
  EXPECT_EQ(fetches(), 1);
}

TEST_F(AuthenticatorTest, RotatedKeyIsPickedUpByOneRefresh) {
  auto auth = Make(absl::ZeroDuration());
  ASSERT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
  Publish({k2_.get(), k1_.get()});
  ASSERT_TRUE(auth->AuthenticateToken(Token(*k2_, "x")).ok());
  EXPECT_EQ(fetches(), 2);
  ASSERT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());  // previous key still valid
  EXPECT_EQ(fetches(), 2);
}

TEST_F(AuthenticatorTest, UnknownKeyRefreshIsRateLimited) {
  auto auth = Make(absl::Hours(1));
  ASSERT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
  for (int i = 0; i < 5; ++i) {
    auto r = auth->AuthenticateToken(Token(*k2_, "x"));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  }
  EXPECT_EQ(fetches(), 1);
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
  EXPECT_EQ(auth.Prefetch().code(), absl::StatusCode::kUnavailable);
}

TEST_F(AuthenticatorTest, ManyCallersWithAnUnknownKidShareOneFetch) {
  constexpr int kCallers = 8;
  // The second fetch returns only once every caller is waiting for it, so
  // none of them can arrive after it and find the new key by luck.
  before_fetch_ = [this](int n) {
    if (n >= 2) {
      absl::MutexLock lock(&mu_);
      auto all_waiting = [this]()
                             ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return key_waits_ >= kCallers; };
      mu_.Await(absl::Condition(&all_waiting));
    }
    return absl::OkStatus();
  };
  // No rate limit: only the single flight keeps this to one fetch.
  auto auth = Make(FakeTimeOptions(absl::ZeroDuration()));
  ASSERT_TRUE(auth->Prefetch().ok());
  Publish({k2_.get(), k1_.get()});
  const std::string token = Token(*k2_, "x");
  std::vector<absl::Status> results(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] { results[i] = auth->AuthenticateToken(token).status(); });
  }
  for (std::thread& t : callers) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(fetches(), 2);
}

TEST_F(AuthenticatorTest, SlowSourceDoesNotHoldUpCallsWithCachedKeys) {
  absl::Notification fetch_started, release_fetch;
  before_fetch_ = [&](int n) {
    if (n == 2) {
      fetch_started.Notify();
      release_fetch.WaitForNotification();
    }
    return absl::OkStatus();
  };
  auto auth = Make(FakeTimeOptions(absl::ZeroDuration()));
  ASSERT_TRUE(auth->Prefetch().ok());
  Publish({k2_.get(), k1_.get()});
  absl::Status rotated;
  std::thread waiter([&] { rotated = auth->AuthenticateToken(Token(*k2_, "x")).status(); });
  fetch_started.WaitForNotification();
  // The fetch hangs; a token with a known key verifies all the same.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
  release_fetch.Notify();
  waiter.join();
  EXPECT_TRUE(rotated.ok()) << rotated;
  EXPECT_EQ(fetches(), 2);
}

TEST_F(AuthenticatorTest, FailedRefreshKeepsTheCachedKeys) {
  before_fetch_ = [](int n) {
    return n >= 2 ? absl::UnavailableError("connection refused") : absl::OkStatus();
  };
  auto auth = Make(FakeTimeOptions(absl::ZeroDuration()));
  ASSERT_TRUE(auth->Prefetch().ok());
  // An unknown kid asks for a refresh, which fails: retry later, not "bad token".
  EXPECT_EQ(auth->AuthenticateToken(Token(*k2_, "x")).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(fetches(), 2);
  EXPECT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
}

TEST_F(AuthenticatorTest, ScheduledRefreshPicksUpARotationBeforeAnyTokenNamesIt) {
  // An hour's rate limit: only the scheduled refresh can fetch.
  Authenticator::Options options = FakeTimeOptions(absl::Hours(1));
  options.refresh_interval = absl::Minutes(5);
  auto auth = Make(options);
  ASSERT_TRUE(auth->Prefetch().ok());
  Publish({k2_.get()});  // k1 retired
  clock_.Advance(absl::Minutes(4));
  EXPECT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
  EXPECT_EQ(fetches(), 1);
  clock_.Advance(absl::Minutes(1));
  AwaitFetches(2);
  // A k2 token may arrive while that fetch is still being published: it waits
  // for it rather than fetching again.
  EXPECT_TRUE(auth->AuthenticateToken(Token(*k2_, "x")).ok());
  auto retired = auth->AuthenticateToken(Token(*k1_, "x"));
  EXPECT_EQ(retired.status().code(), absl::StatusCode::kUnauthenticated) << retired.status();
  EXPECT_EQ(fetches(), 2);
}

TEST_F(AuthenticatorTest, FailedFirstFetchIsRetriedWithBackoff) {
  before_fetch_ = [](int n) {
    return n == 1 ? absl::UnavailableError("connection refused") : absl::OkStatus();
  };
  Authenticator::Options options = FakeTimeOptions(absl::Seconds(10));
  auto auth = Make(options);
  EXPECT_EQ(auth->Prefetch().code(), absl::StatusCode::kUnavailable);
  // Within the rate limit a call gets the failure at once, without a fetch.
  EXPECT_EQ(auth->AuthenticateToken(Token(*k1_, "x")).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(fetches(), 1);
  // The first retry comes within min_refresh_interval (equal jitter).
  clock_.Advance(options.min_refresh_interval);
  AwaitFetches(2);
  EXPECT_TRUE(auth->AuthenticateToken(Token(*k1_, "x")).ok());
  EXPECT_EQ(fetches(), 2);
}

}  // namespace
}  // namespace pettube::auth
