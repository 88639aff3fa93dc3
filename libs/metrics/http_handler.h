#pragma once

#include "libs/http/http_server.h"
#include "libs/metrics/registry.h"

namespace pettube::metrics {

// Content type of the Prometheus text exposition format 0.0.4.
inline constexpr char kPrometheusTextContentType[] =
    "text/plain; version=0.0.4; charset=utf-8";

// An HTTP handler serving `registry.Serialize()` for GET and HEAD (405
// otherwise), for a "/metrics" route:
//   http::HttpServer::Start(opts.metrics_listen,
//                           {{"/metrics", metrics::MetricsHandler(registry)}});
// `registry` must outlive every server using the handler. Thread-safe.
http::Handler MetricsHandler(const Registry& registry);

}  // namespace pettube::metrics
