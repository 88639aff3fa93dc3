#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pettube::testing {

// What ghz and grpcurl do with server reflection alone: lists the services
// of the server at `address`, resolves each to its file descriptor (and
// every import, fetched by name when not sent along), builds them into a
// pool and finds each service and its methods' types there. Returns the
// listed services, or an error naming the service or file that did not
// resolve (e.g. `grpc.health.v1.Health: Symbol not found.`).
absl::StatusOr<std::vector<std::string>> ResolveServicesOverReflection(
    const std::string& address, absl::Duration timeout = absl::Seconds(10));

}  // namespace pettube::testing
