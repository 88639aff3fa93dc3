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
  RpcMetricsInterceptor(grpc::experimental::ServerRpcInfo* info,
                        const RpcMetricsInterceptorFactory::Families& families)
      : families_(families), type_(TypeName(info->type())), start_(absl::Now()) {
    // "/pettube.broker.v1.Broker/Publish" -> service, method.
    const absl::string_view full = info->method() == nullptr ? "" : info->method();
    const size_t slash = full.rfind('/');
    if (slash != absl::string_view::npos && slash > 0) {
      service_ = std::string(full.substr(1, slash - 1));
      method_ = std::string(full.substr(slash + 1));
    } else {
      service_ = std::string(full);
    }
    // Looked up once per call (reads and writes of a stream may run on two
    // threads at once): building labels per message would allocate on the
    // hot path.
    received_ = &families_.msg_received->Add(BaseLabels());
    sent_ = &families_.msg_sent->Add(BaseLabels());
  }

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
      families_.started->Add(BaseLabels()).Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* md = methods->GetSendInitialMetadata();
      if (md != nullptr && !request_id_.empty()) md->emplace(kRequestIdHeader, request_id_);
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      received_->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      sent_->Increment();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      Finish(status.error_code(), status.error_message());
    }
    methods->Proceed();
  }

 private:
  metrics::Labels BaseLabels() const {
    return {{"grpc_type", type_}, {"grpc_service", service_}, {"grpc_method", method_}};
  }

  void Finish(grpc::StatusCode code, const std::string& message) {
    finished_ = true;
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
    metrics::Labels labels = BaseLabels();
    families_.handling_seconds->Add(labels, metrics::DefaultLatencyBuckets()).Observe(seconds);
    labels["grpc_code"] = GrpcCodeName(code);
    families_.handled->Add(labels).Increment();
    // Health probes would drown the log; everything else gets a line.
    if (service_ == "grpc.health.v1.Health" && code == grpc::StatusCode::OK) return;
    const log::Level level = code == grpc::StatusCode::OK || code == grpc::StatusCode::CANCELLED
                                 ? log::Level::kDebug
                                 : log::Level::kInfo;
    if (!log::Enabled(level)) return;
    log::Write(level, "rpc.done",
               {{"method", method_},
                {"service", service_},
                {"code", GrpcCodeName(code)},
                {"ms", seconds * 1000.0},
                {"message", message},
                {"request_id", request_id_}});
  }

  const RpcMetricsInterceptorFactory::Families& families_;
  const char* type_;
  std::string service_;
  std::string method_;
  std::string request_id_;
  absl::Time start_;
  bool finished_ = false;
  metrics::Counter* received_;
  metrics::Counter* sent_;
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

grpc::experimental::Interceptor* RpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcMetricsInterceptor(info, families_);
}

}  // namespace pettube::server
