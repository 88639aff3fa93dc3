// PetTube auth-token-exchange: OIDC ID tokens in, short-lived scoped credentials out.
// Business logic arrives in its own issue; until then its RPCs answer
// UNIMPLEMENTED (the generated base class's behaviour), while the binary
// already serves health, reflection and /metrics and drains on SIGTERM.
#include "libs/server/server.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"

int main(int argc, char** argv) {
  const pettube::server::Options opts =
      pettube::server::ParseFlagsOrExit(argc, argv, "auth-token-exchange");
  pettube::auth::v1::TokenExchange::Service service;
  return pettube::server::Serve(
      opts, {.services = {pettube::server::Expose<pettube::auth::v1::TokenExchange>(&service)}});
}
