// PetTube media-catalog: media records built from events, in RocksDB.
// Business logic arrives in its own issue; until then its RPCs answer
// UNIMPLEMENTED (the generated base class's behaviour), while the binary
// already serves health, reflection and /metrics and drains on SIGTERM.
#include "libs/server/server.h"
#include "proto/pettube/catalog/v1/catalog.grpc.pb.h"

int main(int argc, char** argv) {
  const pettube::server::Options opts =
      pettube::server::ParseFlagsOrExit(argc, argv, "media-catalog");
  pettube::catalog::v1::MediaCatalog::Service service;
  return pettube::server::Serve(
      opts, {.services = {pettube::server::Expose<pettube::catalog::v1::MediaCatalog>(&service)}});
}
