#pragma once

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/status/statusor.h"
#include "libs/status/grpc_status.h"

namespace pettube::server {

// Finishes a callback-API unary call with a core result: the value into
// `response` when OK, the status mapped by ToGrpcStatus either way.
//   return FinishUnary(context, catalog_.Get(request->name()), response);
template <typename T>
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      absl::StatusOr<T> result, T* response) {
  auto* reactor = context->DefaultReactor();
  if (result.ok()) *response = std::move(*result);
  reactor->Finish(status::ToGrpcStatus(result.status()));
  return reactor;
}

// Finishes a unary call that has no result but its status.
inline grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                             const absl::Status& status) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(status::ToGrpcStatus(status));
  return reactor;
}

}  // namespace pettube::server
