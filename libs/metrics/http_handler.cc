#include "libs/metrics/http_handler.h"

namespace pettube::metrics {

http::Handler MetricsHandler(const Registry& registry) {
  return [&registry](const http::Request& request) {
    http::Response response;
    if (request.method != "GET" && request.method != "HEAD") {
      response.status = 405;
      response.headers.emplace_back("Allow", "GET, HEAD");
      response.body = "method not allowed\n";
      return response;
    }
    response.content_type = kPrometheusTextContentType;
    response.body = registry.Serialize();
    return response;
  };
}

}  // namespace pettube::metrics
