#pragma once

#include <grpcpp/support/server_interceptor.h>

#include "libs/metrics/registry.h"

namespace pettube::server {

// Per-RPC server metrics and logs, under the names the gRPC ecosystem uses
// (go-grpc-prometheus / grpc-ecosystem), so existing dashboards work:
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}
//   grpc_server_msg_received_total / grpc_server_msg_sent_total
// Also gives every call a request id (the client's x-request-id header, or
// a new one), returns it in the response headers and logs one line per
// finished call with it.
//
// Thread-safe: one factory per server; an interceptor per call.
class RpcMetricsInterceptorFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(metrics::Registry& registry);

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

  struct Families {
    metrics::Family<metrics::Counter>* started;
    metrics::Family<metrics::Counter>* handled;
    metrics::Family<metrics::Histogram>* handling_seconds;
    metrics::Family<metrics::Counter>* msg_received;
    metrics::Family<metrics::Counter>* msg_sent;
  };

 private:
  Families families_;
};

// The go-grpc codes.Code String() name of a status code ("OK", "NotFound").
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace pettube::server
