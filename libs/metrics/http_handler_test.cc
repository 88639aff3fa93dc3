#include "libs/metrics/http_handler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/metrics/registry.h"

namespace pettube::metrics {
namespace {

using ::testing::Contains;
using ::testing::Pair;

// The handler is called directly: no server, so no 2 s civetweb stop.
http::Request Get() {
  http::Request request;
  request.method = "GET";
  request.path = "/metrics";
  return request;
}

TEST(MetricsHandlerTest, ServesTheRegistryAsPrometheusText) {
  Registry registry;
  BuildCounter()
      .Name("served_total")
      .Help("Served.")
      .Register(registry)
      .Add({})
      .Increment(2);
  const http::Response response = MetricsHandler(registry)(Get());
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response.body,
            "# HELP served_total Served.\n"
            "# TYPE served_total counter\n"
            "served_total 2\n");
}

TEST(MetricsHandlerTest, EachRequestSeesCurrentValues) {
  Registry registry;
  Gauge& gauge = BuildGauge().Name("level").Register(registry).Add({});
  const http::Handler handler = MetricsHandler(registry);
  gauge.Set(1);
  EXPECT_EQ(handler(Get()).body, "# TYPE level gauge\nlevel 1\n");
  gauge.Set(2);
  EXPECT_EQ(handler(Get()).body, "# TYPE level gauge\nlevel 2\n");
}

TEST(MetricsHandlerTest, HeadIsServedLikeGet) {
  Registry registry;
  http::Request head = Get();
  head.method = "HEAD";
  EXPECT_EQ(MetricsHandler(registry)(head).status, 200);
}

TEST(MetricsHandlerTest, OtherMethodsGet405WithAllow) {
  Registry registry;
  http::Request post = Get();
  post.method = "POST";
  const http::Response response = MetricsHandler(registry)(post);
  EXPECT_EQ(response.status, 405);
  EXPECT_THAT(response.headers, Contains(Pair("Allow", "GET, HEAD")));
}

}  // namespace
}  // namespace pettube::metrics
