#include "libs/server/server.h"

#include <arpa/inet.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "libs/fs/read_file.h"
#include "libs/log/log.h"
#include "libs/metrics/http_handler.h"
#include "libs/server/rpc_metrics_interceptor.h"

namespace pettube::server {
namespace {

constexpr int kMaxMessageBytes = 16 << 20;  // 4 MiB upload chunks, 1 MiB events, batches.

// gRPC reports only "failed to bind"; try the bind ourselves first so the
// message says why (address in use, permission denied, no such address).
absl::Status CheckBindable(absl::string_view flag, const std::string& address) {
  std::string host;
  int port;
  if (auto s = ParseHostPort(flag, address, &host, &port); !s.ok()) return s;
  if (port == 0) return absl::OkStatus();
  sockaddr_storage storage{};
  socklen_t len;
  int family;
  if (auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
      inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(*v4);
  } else if (auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
             inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(*v6);
  } else {
    return absl::OkStatus();  // A host name: let gRPC resolve it.
  }
  const int fd = ::socket(family, SOCK_STREAM, 0);
  if (fd < 0) return absl::OkStatus();
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&storage), len);
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat(flag, " ", address, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const Options& opts) {
  if (opts.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  auto cert = fs::ReadFile("tls_cert_file", opts.tls_cert_file);
  if (!cert.ok()) return cert.status();
  auto key = fs::ReadFile("tls_key_file", opts.tls_key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!opts.tls_client_ca_file.empty()) {
    auto ca = fs::ReadFile("tls_client_ca_file", opts.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

metrics::Registry& ProcessRegistry() {
  static auto* registry = new metrics::Registry();
  return *registry;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const Options& opts, ServeSpec spec) {
  std::unique_ptr<Server> server(new Server());
  server->opts_ = opts;
  server->spec_ = std::move(spec);

  if (auto s = CheckBindable("listen", opts.listen); !s.ok()) return s;

  grpc::EnableDefaultHealthCheckService(true);
  // The default health service is built on upb and puts no descriptors in
  // protobuf's generated pool, so reflection would list grpc.health.v1.Health
  // yet answer "Symbol not found" for it (ghz#419, grpcurl describe). Naming
  // a generated health type links health.pb.cc, whose static initializer
  // registers the file.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int selected_port = 0;
  auto credentials = ServerCredentials(opts);
  if (!credentials.ok()) return credentials.status();
  builder.AddListeningPort(opts.listen, *credentials, &selected_port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  for (const ExposedService& exposed : server->spec_.services) {
    builder.RegisterService(exposed.service);
  }
  if (server->spec_.configure_builder) server->spec_.configure_builder(builder);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RpcMetricsInterceptorFactory>(ProcessRegistry()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server->grpc_ = builder.BuildAndStart();
  if (server->grpc_ == nullptr || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("listen ", opts.listen, ": cannot bind"));
  }
  for (const ExposedService& exposed : server->spec_.services) {
    server->grpc_->GetHealthCheckService()->SetServingStatus(exposed.name, true);
  }
  std::string host;
  int port;
  (void)ParseHostPort("listen", opts.listen, &host, &port);
  server->grpc_address_ = host.find(':') == std::string::npos
                              ? absl::StrCat(host, ":", selected_port)
                              : absl::StrCat("[", host, "]:", selected_port);

  std::vector<std::pair<std::string, http::Handler>> routes = server->spec_.http_routes;
  routes.emplace_back("/metrics", metrics::MetricsHandler(ProcessRegistry()));
  auto http = http::HttpServer::Start(opts.metrics_listen, std::move(routes));
  if (!http.ok()) {
    server->grpc_->Shutdown();
    return http.status();
  }
  server->http_ = std::move(*http);
  return server;
}

Server::~Server() { Shutdown(); }

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (grpc_ != nullptr) {
    // NOT_SERVING first: load balancers and Kubernetes stop sending new calls.
    grpc_->GetHealthCheckService()->SetServingStatus(false);
    if (spec_.on_drain) spec_.on_drain();
    grpc_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(opts_.drain_timeout));
    grpc_->Wait();
  }
  http_.reset();
}

int Serve(const Options& opts, ServeSpec spec) {
  std::string extra;
  for (const auto& [name, value] : spec.ready_fields) absl::StrAppend(&extra, " ", name, "=", value);
  auto server = Server::Start(opts, std::move(spec));
  if (!server.ok()) return ExitWith(server.status());
  log::Info("server.ready", {{"grpc", (*server)->grpc_address()},
                             {"metrics", (*server)->metrics_address()},
                             {"data_dir", opts.data_dir}});
  std::printf("ready grpc=%s metrics=%s%s\n", (*server)->grpc_address().c_str(),
              (*server)->metrics_address().c_str(), extra.c_str());
  std::fflush(stdout);

  // ParseFlagsOrExit blocked these in every thread; only this wait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) != 0) {
  }
  log::Info(
      "server.draining",
      {{"signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT"},
       {"drain_timeout_ms", static_cast<int64_t>(absl::ToInt64Milliseconds(opts.drain_timeout))}});
  (*server)->Shutdown();
  log::Info("server.stopped");
  return 0;
}

}  // namespace pettube::server
