// PetTube broker: the durable central event router.
// Business logic arrives in its own issue; until then its RPCs answer
// UNIMPLEMENTED (the generated base class's behaviour), while the binary
// already serves health, reflection and /metrics and drains on SIGTERM.
#include "libs/server/server.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

int main(int argc, char** argv) {
  const pettube::server::Options opts = pettube::server::ParseFlagsOrExit(argc, argv, "broker");
  pettube::broker::v1::Broker::Service service;
  return pettube::server::Serve(
      opts, {.services = {pettube::server::Expose<pettube::broker::v1::Broker>(&service)}});
}
