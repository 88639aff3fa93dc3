#include "libs/server/rpc_metrics_interceptor.h"

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/log/log.h"

namespace pettube::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr char kRequestIdHeader[] = "x-request-id";

const char* TypeName(grpc::experimental::ServerRpcInfo::Type type) {
  switch (type) {
    case grpc::experimental::ServerRpcInfo::Type::UNARY:
      return "unary";
    case grpc::experimental::ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case grpc::experimental::ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

// One call. Created by gRPC when the call starts, destroyed when it ends.
class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit RpcMetricsInterceptor(const RpcMetricsInterceptorFactory::MethodMetrics& metrics)
      : metrics_(metrics), start_(absl::Now()) {}

  ~RpcMetricsInterceptor() override {
    // A call cancelled by its client ends without sending a status.
    if (!finished_) Finish(grpc::StatusCode::CANCELLED, "");
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* md = methods->GetRecvInitialMetadata();
      if (md != nullptr) {
        auto it = md->find(kRequestIdHeader);
        if (it != md->end()) request_id_.assign(it->second.data(), it->second.size());
      }
      if (request_id_.empty() || request_id_.size() > 128) request_id_ = log::NewRequestId();
      metrics_.started().Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* md = methods->GetSendInitialMetadata();
      if (md != nullptr && !request_id_.empty()) md->emplace(kRequestIdHeader, request_id_);
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      metrics_.received().Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      metrics_.sent().Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      Finish(status.error_code(), status.error_message());
    }
    methods->Proceed();
  }

 private:
  void Finish(grpc::StatusCode code, const std::string& message) {
    finished_ = true;
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
    metrics_.handling_seconds().Observe(seconds);
    metrics_.handled(code).Increment();
    // Health probes would drown the log; everything else gets a line.
    if (metrics_.service() == "grpc.health.v1.Health" && code == grpc::StatusCode::OK) return;
    const log::Level level = code == grpc::StatusCode::OK || code == grpc::StatusCode::CANCELLED
                                 ? log::Level::kDebug
                                 : log::Level::kInfo;
    if (!log::Enabled(level)) return;
    log::Write(level, "rpc.done",
               {{"method", metrics_.method()},
                {"service", metrics_.service()},
                {"code", GrpcCodeName(code)},
                {"ms", seconds * 1000.0},
                {"message", message},
                {"request_id", request_id_}});
  }

  const RpcMetricsInterceptorFactory::MethodMetrics& metrics_;
  std::string request_id_;
  absl::Time start_;
  bool finished_ = false;
};

}  // namespace

const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "Canceled";
    case grpc::StatusCode::UNKNOWN:
      return "Unknown";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "InvalidArgument";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DeadlineExceeded";
    case grpc::StatusCode::NOT_FOUND:
      return "NotFound";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "AlreadyExists";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PermissionDenied";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "ResourceExhausted";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FailedPrecondition";
    case grpc::StatusCode::ABORTED:
      return "Aborted";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OutOfRange";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "Unimplemented";
    case grpc::StatusCode::INTERNAL:
      return "Internal";
    case grpc::StatusCode::UNAVAILABLE:
      return "Unavailable";
    case grpc::StatusCode::DATA_LOSS:
      return "DataLoss";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "Unauthenticated";
    default:
      return "Unknown";
  }
}

RpcMetricsInterceptorFactory::RpcMetricsInterceptorFactory(metrics::Registry& registry) {
  families_.started = &metrics::BuildCounter()
                           .Name("grpc_server_started_total")
                           .Help("Total number of RPCs started on the server.")
                           .Register(registry);
  families_.handled = &metrics::BuildCounter()
                           .Name("grpc_server_handled_total")
                           .Help(
                               "Total number of RPCs completed on the server, regardless of "
                               "success or failure.")
                           .Register(registry);
  families_.handling_seconds =
      &metrics::BuildHistogram()
           .Name("grpc_server_handling_seconds")
           .Help(
               "Histogram of response latency (seconds) of gRPC that had been application-"
               "level handled by the server.")
           .Register(registry);
  families_.msg_received = &metrics::BuildCounter()
                                .Name("grpc_server_msg_received_total")
                                .Help("Total number of RPC stream messages received on the server.")
                                .Register(registry);
  families_.msg_sent = &metrics::BuildCounter()
                            .Name("grpc_server_msg_sent_total")
                            .Help("Total number of gRPC stream messages sent by the server.")
                            .Register(registry);
}

RpcMetricsInterceptorFactory::MethodMetrics::MethodMetrics(const Families& families,
                                                           absl::string_view full_method,
                                                           const char* type)
    : families_(families), type_(type) {
  // "/pettube.broker.v1.Broker/Publish" -> service, method.
  const size_t slash = full_method.rfind('/');
  if (slash != absl::string_view::npos && slash > 0) {
    service_ = std::string(full_method.substr(1, slash - 1));
    method_ = std::string(full_method.substr(slash + 1));
  } else {
    service_ = std::string(full_method);
  }
  started_ = &families_.started->Add(BaseLabels());
  received_ = &families_.msg_received->Add(BaseLabels());
  sent_ = &families_.msg_sent->Add(BaseLabels());
  handling_seconds_ =
      &families_.handling_seconds->Add(BaseLabels(), metrics::DefaultLatencyBuckets());
}

metrics::Labels RpcMetricsInterceptorFactory::MethodMetrics::BaseLabels() const {
  return {{"grpc_type", type_}, {"grpc_service", service_}, {"grpc_method", method_}};
}

metrics::Counter& RpcMetricsInterceptorFactory::MethodMetrics::handled(
    grpc::StatusCode code) const {
  const int index = code >= 0 && code < static_cast<int>(handled_.size())
                        ? static_cast<int>(code)
                        : static_cast<int>(grpc::StatusCode::UNKNOWN);
  metrics::Counter* counter = handled_[index].load(std::memory_order_acquire);
  if (counter == nullptr) {
    // Two first calls may race here: Add returns the same series to both.
    metrics::Labels labels = BaseLabels();
    labels["grpc_code"] = GrpcCodeName(static_cast<grpc::StatusCode>(index));
    counter = &families_.handled->Add(labels);
    handled_[index].store(counter, std::memory_order_release);
  }
  return *counter;
}

const RpcMetricsInterceptorFactory::MethodMetrics& RpcMetricsInterceptorFactory::ForMethod(
    absl::string_view full_method, const char* type) {
  // A method's name fixes its type, so the name alone is the key; looked up
  // as a string_view, so a call allocates nothing here.
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = methods_.find(full_method);
    if (it != methods_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  auto& slot = methods_[full_method];
  if (slot == nullptr) slot = std::make_unique<MethodMetrics>(families_, full_method, type);
  return *slot;
}

grpc::experimental::Interceptor* RpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  const absl::string_view full = info->method() == nullptr ? "" : info->method();
  return new RpcMetricsInterceptor(ForMethod(full, TypeName(info->type())));
}

}  // namespace pettube::server
