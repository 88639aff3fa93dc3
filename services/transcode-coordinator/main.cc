// PetTube transcode-coordinator: plans rendition ladders and orchestrates transcode jobs.
// Business logic arrives in its own issue; until then its RPCs answer
// UNIMPLEMENTED (the generated base class's behaviour), while the binary
// already serves health, reflection and /metrics and drains on SIGTERM.
#include "libs/server/server.h"
#include "proto/pettube/transcode/v1/transcode.grpc.pb.h"

int main(int argc, char** argv) {
  const pettube::server::Options opts =
      pettube::server::ParseFlagsOrExit(argc, argv, "transcode-coordinator");
  pettube::transcode::v1::TranscodeCoordinator::Service service;
  return pettube::server::Serve(
      opts, {.services = {
                 pettube::server::Expose<pettube::transcode::v1::TranscodeCoordinator>(&service)}});
}
