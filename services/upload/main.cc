// PetTube upload: resumable, checksummed uploads into the originals store.
// Business logic arrives in its own issue; until then its RPCs answer
// UNIMPLEMENTED (the generated base class's behaviour), while the binary
// already serves health, reflection and /metrics and drains on SIGTERM.
#include "libs/server/server.h"
#include "proto/pettube/upload/v1/upload.grpc.pb.h"

int main(int argc, char** argv) {
  const pettube::server::Options opts = pettube::server::ParseFlagsOrExit(argc, argv, "upload");
  pettube::upload::v1::Upload::Service service;
  return pettube::server::Serve(
      opts, {.services = {pettube::server::Expose<pettube::upload::v1::Upload>(&service)}});
}
