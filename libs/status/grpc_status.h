#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace pettube::status {

// The one place an absl::Status becomes a grpc::Status. The canonical codes
// share numbering, so the code carries over as is; the message is kept.
// Call only from *_service.cc, where a request leaves the core.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The reverse, for clients: a grpc::Status from a call as an absl::Status,
// message prefixed with `context` (e.g. the method called) when given.
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view context = "");

}  // namespace pettube::status
