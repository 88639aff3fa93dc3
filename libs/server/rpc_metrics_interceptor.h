#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
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

  // One method's series, found once and kept: building label sets per call
  // would cost allocations and lookups on every RPC.
  class MethodMetrics {
   public:
    MethodMetrics(const Families& families, absl::string_view full_method, const char* type);

    const std::string& service() const { return service_; }
    const std::string& method() const { return method_; }
    metrics::Counter& started() const { return *started_; }
    metrics::Counter& received() const { return *received_; }
    metrics::Counter& sent() const { return *sent_; }
    metrics::Histogram& handling_seconds() const { return *handling_seconds_; }
    // grpc_server_handled_total for `code`, made on its first use.
    metrics::Counter& handled(grpc::StatusCode code) const;

   private:
    metrics::Labels BaseLabels() const;

    const Families& families_;
    const char* type_;
    std::string service_;
    std::string method_;
    metrics::Counter* started_;
    metrics::Counter* received_;
    metrics::Counter* sent_;
    metrics::Histogram* handling_seconds_;
    // By code (0..16; anything else counts as UNKNOWN).
    mutable std::array<std::atomic<metrics::Counter*>, 17> handled_{};
  };

 private:
  const MethodMetrics& ForMethod(absl::string_view full_method, const char* type)
      ABSL_LOCKS_EXCLUDED(mu_);

  Families families_;
  absl::Mutex mu_;
  // By full method name; entries live as long as the factory.
  absl::flat_hash_map<std::string, std::unique_ptr<MethodMetrics>> methods_ ABSL_GUARDED_BY(mu_);
};

// The go-grpc codes.Code String() name of a status code ("OK", "NotFound").
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace pettube::server
