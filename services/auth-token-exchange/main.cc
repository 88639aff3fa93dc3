// PetTube auth-token-exchange: OIDC ID tokens in, short-lived scoped
// PetTube access tokens out (see token_exchange.h).

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "libs/fs/read_file.h"
#include "libs/log/log.h"
#include "libs/server/server.h"
#include "services/auth-token-exchange/auth_service.h"

ABSL_FLAG(std::string, issuer, "pettube-auth", "\"iss\" of the access tokens we sign");
ABSL_FLAG(std::string, audience, "pettube", "\"aud\" of the access tokens we sign");
ABSL_FLAG(std::string, trusted_issuers_file, "",
          "JSON array of {issuer, client_id, jwks_uri}: the OIDC providers whose ID tokens we "
          "accept (e.g. Google)");
ABSL_FLAG(std::string, workload_clients_file, "",
          "JSON array of {client_id, secret_sha256 | secret_file, scopes}: internal callers");
ABSL_FLAG(bool, dev_idp, false,
          "run the development identity provider and trust its tokens (never in production)");
ABSL_FLAG(std::string, dev_idp_issuer, pettube::auth::DevIdentityProvider::kDefaultIssuer,
          "issuer of the development identity provider");
ABSL_FLAG(std::string, dev_idp_client_id, pettube::auth::DevIdentityProvider::kDefaultClientId,
          "audience the development identity provider's tokens carry");
ABSL_FLAG(absl::Duration, key_rotation, absl::Hours(24), "signing key lifetime before rotation");
ABSL_FLAG(absl::Duration, jwks_refresh_interval, absl::Seconds(30),
          "least time between two fetches of an issuer's keys on an unknown key id");

namespace {}  // namespace

int main(int argc, char** argv) {
  const pettube::server::Options opts =
      pettube::server::ParseFlagsOrExit(argc, argv, "auth-token-exchange");
  auto store = pettube::auth::AuthStore::Open(opts.data_dir + "/store");
  if (!store.ok()) return pettube::server::ExitWith(store.status());
  auto keys = pettube::auth::KeyManager::Open(store->get(), absl::GetFlag(FLAGS_key_rotation));
  if (!keys.ok()) return pettube::server::ExitWith(keys.status());

  pettube::auth::CurlJwksFetcher fetcher;
  pettube::auth::TrustedIssuers issuers(&fetcher, absl::GetFlag(FLAGS_jwks_refresh_interval));
  if (const std::string path = absl::GetFlag(FLAGS_trusted_issuers_file); !path.empty()) {
    auto text = pettube::fs::ReadFile("trusted_issuers_file", path);
    if (!text.ok()) return pettube::server::ExitWith(text.status());
    auto configs = pettube::auth::ParseIssuersFile(*text);
    if (!configs.ok()) return pettube::server::ExitWith(configs.status());
    for (const auto& c : *configs) issuers.Add(c);
  }
  std::unique_ptr<pettube::auth::DevIdentityProvider> dev_idp;
  if (absl::GetFlag(FLAGS_dev_idp)) {
    auto idp = pettube::auth::DevIdentityProvider::Open(opts.data_dir + "/dev-idp-key.pem",
                                                        absl::GetFlag(FLAGS_dev_idp_issuer),
                                                        absl::GetFlag(FLAGS_dev_idp_client_id));
    if (!idp.ok()) return pettube::server::ExitWith(idp.status());
    dev_idp = std::move(*idp);
    issuers.AddLocal({dev_idp->issuer(), dev_idp->client_id(), "local"},
                     [idp = dev_idp.get()] { return idp->JwksJson(); });
    pettube::log::Warning("auth.dev_idp_enabled", {{"issuer", dev_idp->issuer()}});
  }
  pettube::auth::WorkloadClients workloads;
  if (const std::string path = absl::GetFlag(FLAGS_workload_clients_file); !path.empty()) {
    auto text = pettube::fs::ReadFile("workload_clients_file", path);
    if (!text.ok()) return pettube::server::ExitWith(text.status());
    auto parsed = pettube::auth::WorkloadClients::Parse(*text);
    if (!parsed.ok()) return pettube::server::ExitWith(parsed.status());
    workloads = std::move(*parsed);
  }

  pettube::auth::TokenExchange::Options exchange_options;
  exchange_options.issuer = absl::GetFlag(FLAGS_issuer);
  exchange_options.default_audience = absl::GetFlag(FLAGS_audience);
  exchange_options.audiences = {exchange_options.default_audience};
  pettube::auth::TokenExchange exchange(exchange_options, &issuers, store->get(), keys->get(),
                                        &workloads);
  // Our own tokens, verified with our own keys (GetIdentity).
  pettube::auth::Authenticator authenticator(
      {exchange_options.issuer, exchange_options.default_audience, absl::Seconds(1)},
      [km = keys->get()]() -> absl::StatusOr<std::string> { return km->JwksJson(); });
  pettube::auth::TokenExchangeService service(exchange, **keys, **store, authenticator);

  pettube::server::ServeSpec spec;
  spec.services.push_back(pettube::server::Expose<pettube::auth::v1::TokenExchange>(&service));
  spec.http_routes.emplace_back("/.well-known/jwks.json",
                                [km = keys->get()](const pettube::http::Request&) {
                                  pettube::http::Response r;
                                  r.content_type = "application/jwk-set+json";
                                  r.headers.emplace_back("Cache-Control", "public, max-age=300");
                                  r.body = km->JwksJson();
                                  return r;
                                });
  std::unique_ptr<pettube::auth::DevIdentityProviderService> dev_service;
  if (dev_idp != nullptr) {
    dev_service = std::make_unique<pettube::auth::DevIdentityProviderService>(*dev_idp);
    spec.services.push_back(
        pettube::server::Expose<pettube::auth::v1::DevIdentityProvider>(dev_service.get()));
    spec.http_routes.emplace_back("/dev-idp/jwks.json",
                                  [idp = dev_idp.get()](const pettube::http::Request&) {
                                    pettube::http::Response r;
                                    r.content_type = "application/jwk-set+json";
                                    r.body = idp->JwksJson();
                                    return r;
                                  });
  }
  return pettube::server::Serve(opts, std::move(spec));
}
