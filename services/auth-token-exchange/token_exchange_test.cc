#include "services/auth-token-exchange/token_exchange.h"

#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/base64url.h"
#include "libs/auth/jwt.h"
#include "services/auth-token-exchange/dev_identity_provider.h"

namespace pettube::auth {
namespace {

// Serves a JWKS document for "https://idp.test/jwks" and counts fetches.
class FakeFetcher : public JwksFetcher {
 public:
  absl::StatusOr<std::string> Fetch(const std::string& uri) override {
    ++fetches;
    if (uri != "https://idp.test/jwks") return absl::UnavailableError("no such uri");
    return jwks;
  }
  std::string jwks;
  int fetches = 0;
};

class TokenExchangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/exchange-", ++counter_);
    auto store = AuthStore::Open(dir_ + "/store");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto keys = KeyManager::Open(store_.get(), absl::Hours(24));
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = std::move(*keys);
    // An external provider with its own key, served over "https".
    auto idp_key = SigningKey::Generate("idp-1");
    ASSERT_TRUE(idp_key.ok());
    idp_key_ = std::make_unique<SigningKey>(std::move(*idp_key));
    JwkSet set;
    ASSERT_TRUE(set.Add(*idp_key_->ToPublicKey()).ok());
    fetcher_.jwks = ToJwksJson(set);
    issuers_ = std::make_unique<TrustedIssuers>(&fetcher_, absl::Seconds(30));
    issuers_->Add({"https://idp.test", "pettube-web", "https://idp.test/jwks"});
    auto clients = WorkloadClients::Parse(
        absl::StrCat(R"([{"client_id": "media-catalog", "secret_sha256": ")",
                     WorkloadClients::Sha256Hex("catalog-secret-0123456789"),
                     R"(", "scopes": ["events.subscribe", "events.publish"]}])"));
    ASSERT_TRUE(clients.ok()) << clients.status();
    workloads_ = std::move(*clients);
    exchange_ = std::make_unique<TokenExchange>(TokenExchange::Options{}, issuers_.get(),
                                                store_.get(), keys_.get(), &workloads_);
  }

  nlohmann::json Claims(absl::Time now = absl::Now()) {
    const int64_t t = absl::ToUnixSeconds(now);
    return {{"iss", "https://idp.test"},
            {"aud", "pettube-web"},
            {"sub", "alice"},
            {"iat", t},
            {"exp", t + 3600}};
  }

  std::string IdToken(const nlohmann::json& claims) { return *SignCompact(claims, *idp_key_); }

  absl::StatusOr<v1::ExchangeTokenResponse> Exchange(const std::string& token) {
    v1::ExchangeTokenRequest req;
    req.set_subject_token(token);
    req.set_subject_token_type(TokenExchange::kIdTokenType);
    return exchange_->Exchange(req, absl::Now());
  }

  void ExpectRefused(const std::string& token, absl::string_view reason) {
    auto r = Exchange(token);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
    EXPECT_NE(r.status().message().find(reason), absl::string_view::npos) << r.status();
  }

  static int counter_;
  std::string dir_;
  std::unique_ptr<AuthStore> store_;
  std::unique_ptr<KeyManager> keys_;
  std::unique_ptr<SigningKey> idp_key_;
  FakeFetcher fetcher_;
  std::unique_ptr<TrustedIssuers> issuers_;
  WorkloadClients workloads_;
  std::unique_ptr<TokenExchange> exchange_;
};

int TokenExchangeTest::counter_ = 0;

TEST_F(TokenExchangeTest, ValidIdTokenBecomesAScopedAccessTokenForAStableIdentity) {
  auto first = Exchange(IdToken(Claims()));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->token_type(), "Bearer");
  EXPECT_EQ(first->issued_token_type(), TokenExchange::kAccessTokenType);
  EXPECT_EQ(first->scopes_size(), 3);
  const int64_t lifetime = first->expire_time().seconds() - absl::ToUnixSeconds(absl::Now());
  EXPECT_NEAR(lifetime, 15 * 60, 5);
  // The access token verifies with our published keys.
  auto keys = ParseJwks(keys_->JwksJson());
  ASSERT_TRUE(keys.ok());
  ValidationPolicy policy{{"pettube-auth"}, "pettube"};
  auto verifier = Verifier::Create(std::move(*keys), policy);
  ASSERT_TRUE(verifier.ok());
  auto claims = verifier->Verify(first->access_token(), absl::Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ((*claims)["sub"], first->identity().name().substr(11));
  EXPECT_EQ((*claims)["scope"], "media.upload media.read media.write");
  EXPECT_TRUE(claims->contains("jti"));
  // Same person later, after a key rotation: same identity.
  ASSERT_TRUE(keys_->Rotate().ok());
  auto second = Exchange(IdToken(Claims()));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->identity().name(), first->identity().name());
  auto other = Exchange(IdToken([&] {
    auto c = Claims();
    c["sub"] = "bob";
    return c;
  }()));
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->identity().name(), first->identity().name());
}

TEST_F(TokenExchangeTest, IdentitiesSurviveARestart) {
  auto first = Exchange(IdToken(Claims()));
  ASSERT_TRUE(first.ok());
  exchange_.reset();
  keys_.reset();
  store_.reset();
  auto store = AuthStore::Open(dir_ + "/store");
  ASSERT_TRUE(store.ok());
  store_ = std::move(*store);
  auto again = store_->GetOrCreateIdentity("https://idp.test", "alice", false);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->name(), first->identity().name());
}

TEST_F(TokenExchangeTest, ForgedSignatureIsRefused) {
  std::string token = IdToken(Claims());
  token[token.size() - 5] = token[token.size() - 5] == 'A' ? 'B' : 'A';
  ExpectRefused(token, "signature");
}

TEST_F(TokenExchangeTest, AlgNoneIsRefused) {
  const std::string header = Base64UrlEncode(R"({"alg":"none","kid":"idp-1"})");
  const std::string payload = Base64UrlEncode(Claims().dump());
  ExpectRefused(header + "." + payload + ".AAAA", "none");
}

TEST_F(TokenExchangeTest, ExpiredAndNotYetValidTokensAreRefused) {
  ExpectRefused(IdToken(Claims(absl::Now() - absl::Hours(2))), "expired");
  auto future = Claims();
  future["nbf"] = absl::ToUnixSeconds(absl::Now() + absl::Hours(1));
  ExpectRefused(IdToken(future), "nbf");
}

TEST_F(TokenExchangeTest, WrongAudienceAndUntrustedIssuerAreRefused) {
  auto wrong_aud = Claims();
  wrong_aud["aud"] = "someone-else";
  ExpectRefused(IdToken(wrong_aud), "aud");
  auto untrusted = Claims();
  untrusted["iss"] = "https://evil.example";
  ExpectRefused(IdToken(untrusted), "not trusted");
}

TEST_F(TokenExchangeTest, UnknownKidRefreshesTheJwksAtMostOncePerInterval) {
  ASSERT_TRUE(Exchange(IdToken(Claims())).ok());
  EXPECT_EQ(fetcher_.fetches, 1);  // fetched on first use, then cached
  ASSERT_TRUE(Exchange(IdToken(Claims())).ok());
  EXPECT_EQ(fetcher_.fetches, 1);
  // The provider rotates to a new key.
  auto rotated = SigningKey::Generate("idp-2");
  ASSERT_TRUE(rotated.ok());
  JwkSet set;
  ASSERT_TRUE(set.Add(*rotated->ToPublicKey()).ok());
  fetcher_.jwks = ToJwksJson(set);
  const std::string new_token = *SignCompact(Claims(), *rotated);
  // Within the interval since the last fetch, unknown kids are refused
  // without fetching: callers choose kids, so they must not drive fetches.
  for (int i = 0; i < 5; ++i) ExpectRefused(new_token, "unknown key id");
  EXPECT_EQ(fetcher_.fetches, 1);
  // Once the interval has passed, one refresh picks the new key up.
  TrustedIssuers eager(&fetcher_, absl::ZeroDuration());
  eager.Add({"https://idp.test", "pettube-web", "https://idp.test/jwks"});
  fetcher_.jwks = [&] {
    JwkSet old_and_new;
    EXPECT_TRUE(old_and_new.Add(*idp_key_->ToPublicKey()).ok());
    return ToJwksJson(old_and_new);
  }();
  ASSERT_TRUE(eager.Verify(IdToken(Claims()), absl::Now()).ok());  // caches idp-1 only
  fetcher_.jwks = ToJwksJson(set);
  const int before = fetcher_.fetches;
  EXPECT_TRUE(eager.Verify(new_token, absl::Now()).ok());
  EXPECT_EQ(fetcher_.fetches, before + 1);
}

TEST_F(TokenExchangeTest, MalformedAndOversizedTokensAreRefused) {
  ExpectRefused("not-a-jwt", "malformed");
  ExpectRefused("a.b.c", "base64url");
  ExpectRefused(std::string(20000, 'a'), "limit");
}

TEST_F(TokenExchangeTest, ScopesPeopleMayNotHaveArePermissionDenied) {
  v1::ExchangeTokenRequest req;
  req.set_subject_token(IdToken(Claims()));
  req.set_subject_token_type(TokenExchange::kIdTokenType);
  req.add_scopes("events.admin");
  auto r = exchange_->Exchange(req, absl::Now());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  req.clear_scopes();
  req.add_scopes("media.read");
  r = exchange_->Exchange(req, absl::Now());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scopes_size(), 1);
}

TEST_F(TokenExchangeTest, BadRequestShapesAreInvalidArgument) {
  v1::ExchangeTokenRequest req;
  req.set_subject_token(IdToken(Claims()));
  req.set_subject_token_type("urn:something:else");
  EXPECT_EQ(exchange_->Exchange(req, absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
  req.set_subject_token_type(TokenExchange::kIdTokenType);
  req.mutable_lifetime()->set_seconds(60);  // below 15 min
  EXPECT_EQ(exchange_->Exchange(req, absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
  req.mutable_lifetime()->set_seconds(13 * 3600);  // above 12 h
  EXPECT_EQ(exchange_->Exchange(req, absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TokenExchangeTest, WorkloadClientCredentials) {
  v1::IssueWorkloadTokenRequest req;
  req.set_client_id("media-catalog");
  req.set_client_secret("catalog-secret-0123456789");
  auto ok = exchange_->IssueWorkloadToken(req, absl::Now());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->identity().workload());
  EXPECT_EQ(ok->scopes_size(), 2);
  req.set_client_secret("wrong");
  EXPECT_EQ(exchange_->IssueWorkloadToken(req, absl::Now()).status().code(),
            absl::StatusCode::kUnauthenticated);
  req.set_client_id("nobody");
  EXPECT_EQ(exchange_->IssueWorkloadToken(req, absl::Now()).status().code(),
            absl::StatusCode::kUnauthenticated);
  req.set_client_id("media-catalog");
  req.set_client_secret("catalog-secret-0123456789");
  req.add_scopes("events.admin");
  EXPECT_EQ(exchange_->IssueWorkloadToken(req, absl::Now()).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(TokenExchangeTest, DevIdentityProviderTokensExchangeOnlyWhenTrusted) {
  auto idp = DevIdentityProvider::Open(dir_ + "/dev.pem", DevIdentityProvider::kDefaultIssuer,
                                       DevIdentityProvider::kDefaultClientId);
  ASSERT_TRUE(idp.ok()) << idp.status();
  v1::MintIdTokenRequest mint;
  mint.set_user("carol");
  auto minted = (*idp)->Mint(mint, absl::Now());
  ASSERT_TRUE(minted.ok()) << minted.status();
  ExpectRefused(minted->id_token(), "not trusted");
  issuers_->AddLocal({(*idp)->issuer(), (*idp)->client_id(), "local"},
                     [raw = idp->get()] { return raw->JwksJson(); });
  EXPECT_TRUE(Exchange(minted->id_token()).ok());
}

}  // namespace
}  // namespace pettube::auth
