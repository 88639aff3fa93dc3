#pragma once

// Start-up, serving and graceful shutdown shared by every PetTube binary:
// gRPC with the standard health service and server reflection, per-RPC
// metrics, /metrics over HTTP, the `ready` line, drain on SIGTERM.
//
//   int main(int argc, char** argv) {
//     const auto opts = pettube::server::ParseFlagsOrExit(argc, argv, "media-catalog");
//     ... open storage, build the service ...
//     pettube::server::ServeSpec spec;
//     spec.services.push_back(pettube::server::Expose<v1::MediaCatalog>(&service));
//     return pettube::server::Serve(opts, std::move(spec));
//   }

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/http/http_server.h"
#include "libs/metrics/registry.h"
#include "libs/server/options.h"

namespace pettube::server {

// A gRPC service implementation and its full name, so health can report
// it by name (what Kubernetes gRPC probes ask for).
struct ExposedService {
  grpc::Service* service;  // not owned; must outlive the server
  std::string name;        // e.g. "pettube.broker.v1.Broker"
};

// ExposedService for an implementation of API `Api` (the generated outer
// class): Expose<pettube::broker::v1::Broker>(&service).
template <typename Api>
ExposedService Expose(grpc::Service* service) {
  return {service, Api::service_full_name()};
}

// What a binary serves besides the shared parts.
struct ServeSpec {
  // gRPC services.
  std::vector<ExposedService> services;
  // Extra HTTP routes next to /metrics (e.g. /.well-known/jwks.json).
  std::vector<std::pair<std::string, http::Handler>> http_routes;
  // Called once on shutdown, after health turns NOT_SERVING and before
  // gRPC drains: end long-lived streams gracefully here.
  std::function<void()> on_drain;
  // Adjusts the gRPC server before it starts (channel arguments such as
  // flow-control windows), e.g. for a service whose streams carry bulk data.
  std::function<void(grpc::ServerBuilder&)> configure_builder;
  // More "name=value" fields for the ready line, e.g. {"objects",
  // "127.0.0.1:41234"} for a service's second listener.
  std::vector<std::pair<std::string, std::string>> ready_fields;
};

// The metrics registry of this process; services register their own
// families here and they appear on /metrics.
metrics::Registry& ProcessRegistry();

// A running gRPC + HTTP server. Thread-safe.
class Server {
 public:
  // Binds both listeners and starts serving. UNAVAILABLE with the address
  // and the OS's reason when a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const Options& opts, ServeSpec spec);

  ~Server();

  // "HOST:PORT" actually bound (port 0 resolved).
  const std::string& grpc_address() const { return grpc_address_; }
  std::string metrics_address() const { return http_->address(); }

  // Health NOT_SERVING, on_drain, then graceful shutdown: RPCs still running
  // after `drain_timeout` are cancelled. Idempotent.
  void Shutdown();

 private:
  Server() = default;

  Options opts_;
  ServeSpec spec_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<http::HttpServer> http_;
  std::string grpc_address_;
  bool shut_down_ = false;
};

// Start()s, prints "ready grpc=HOST:PORT metrics=HOST:PORT" (then any
// ServeSpec::ready_fields) on stdout,
// waits for SIGTERM or SIGINT (no polling: sigwait), shuts down and returns
// the process exit code: 0 after a clean shutdown, 1 if start-up failed
// (with one line on stderr).
int Serve(const Options& opts, ServeSpec spec);

}  // namespace pettube::server
