// Starts each of the five real service binaries on free ports and checks the
// platform contract every service shares: the ready line, gRPC health,
// server reflection, a valid Prometheus exposition on /metrics with per-RPC
// metrics, a clean exit on SIGTERM, and one clear line for bad start-ups.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/http_get.h"
#include "libs/testing/reflection_check.h"
#include "libs/testing/service_process.h"

namespace pettube {
namespace {

using ::pettube::testing::ChildProcess;
using ::pettube::testing::HttpGet;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::ServiceBinary;
using ::pettube::testing::ServiceProcess;

struct ServiceCase {
  std::string binary;        // name under services/
  std::string grpc_service;  // its main gRPC service, as reflection lists it
  // Flags the binary requires besides the common ones (peers it talks to;
  // unreachable addresses are fine: it connects in the background).
  std::vector<std::string> required_args = {};
};

const ServiceCase kServices[] = {
    {"broker", "pettube.broker.v1.Broker"},
    {"auth-token-exchange", "pettube.auth.v1.TokenExchange"},
    {"upload",
     "pettube.upload.v1.Upload",
     {"--auth_server=127.0.0.1:9", "--broker_server=127.0.0.1:9"}},
    {"media-catalog", "pettube.catalog.v1.MediaCatalog"},
    {"transcode-coordinator",
     "pettube.transcode.v1.TranscodeCoordinator",
     {"--objects_url=http://127.0.0.1:9", "--upload_server=127.0.0.1:9",
      "--auth_server=127.0.0.1:9", "--broker_server=127.0.0.1:9"}},
};

// A started service with its addresses; `process` belongs to `service`.
struct Running {
  std::unique_ptr<ServiceProcess> service;
  ChildProcess* process = nullptr;
  std::string grpc;
  std::string metrics;
};

Running StartService(const std::string& name, std::vector<std::string> extra_args = {}) {
  auto service = ::pettube::testing::StartService(name, std::move(extra_args), absl::Seconds(20));
  EXPECT_TRUE(service.ok()) << service.status();
  Running r;
  if (!service.ok()) return r;
  r.service = std::move(*service);
  r.process = &r.service->process();
  r.grpc = r.service->grpc();
  r.metrics = r.service->metrics();
  return r;
}

class ServiceSmokeTest : public ::testing::TestWithParam<ServiceCase> {};

TEST_P(ServiceSmokeTest, ServesHealthReflectionMetricsAndExitsCleanlyOnSigterm) {
  const ServiceCase& svc = GetParam();
  Running r = StartService(svc.binary, svc.required_args);
  ASSERT_FALSE(r.grpc.empty());
  ASSERT_FALSE(r.metrics.empty());
  EXPECT_EQ(r.grpc.rfind("127.0.0.1:", 0), 0u) << r.grpc;
  EXPECT_NE(r.grpc, "127.0.0.1:0");

  auto channel = grpc::CreateChannel(r.grpc, grpc::InsecureChannelCredentials());
  ASSERT_TRUE(
      channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)));

  // Health: overall and for the service by name (what Kubernetes probes ask).
  auto health = grpc::health::v1::Health::NewStub(channel);
  for (const std::string& name : {std::string(), svc.grpc_service}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(name);
    grpc::health::v1::HealthCheckResponse resp;
    const grpc::Status s = health->Check(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << "health(" << name << "): " << s.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << name;
  }

  // Reflection lists the service's own API and the standard services.
  auto reflection = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  grpc::ClientContext rctx;
  rctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto stream = reflection->ServerReflectionInfo(&rctx);
  grpc::reflection::v1alpha::ServerReflectionRequest rreq;
  rreq.set_list_services("");
  ASSERT_TRUE(stream->Write(rreq));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse rresp;
  ASSERT_TRUE(stream->Read(&rresp));
  std::set<std::string> listed;
  for (const auto& s : rresp.list_services_response().service()) listed.insert(s.name());
  EXPECT_TRUE(listed.count(svc.grpc_service)) << svc.grpc_service;
  EXPECT_TRUE(listed.count("grpc.health.v1.Health"));
  EXPECT_TRUE(listed.count("grpc.reflection.v1alpha.ServerReflection"));
  while (stream->Read(&rresp)) {
  }
  EXPECT_TRUE(stream->Finish().ok());

  // /metrics: valid exposition, with the per-RPC metrics of the calls above.
  auto scrape = HttpGet(r.metrics, "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_EQ(scrape->status, 200);
  EXPECT_NE(scrape->headers.find("text/plain; version=0.0.4"), std::string::npos)
      << scrape->headers;
  EXPECT_NE(scrape->body.find("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Check\","
                              "grpc_service=\"grpc.health.v1.Health\",grpc_type=\"unary\"} 2"),
            std::string::npos)
      << scrape->body;
  EXPECT_NE(scrape->body.find("grpc_server_started_total"), std::string::npos);
  EXPECT_NE(scrape->body.find("grpc_server_handling_seconds_bucket"), std::string::npos);
  const std::string file = NewTempDir("scrape") + "/metrics.txt";
  std::ofstream(file) << scrape->body;
  EXPECT_EQ(std::system(absl::StrCat("/usr/bin/promtool check metrics < ", file).c_str()), 0)
      << scrape->body;

  // SIGTERM: drain and exit 0.
  r.process->Signal(SIGTERM);
  auto code = r.process->WaitForExit(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << r.process->Stderr();
  EXPECT_NE(r.process->Stderr().find("event=server.stopped"), std::string::npos);
}

// Reflection alone, as ghz and grpcurl use it: every service the server
// lists must resolve to its file descriptor, and the files it sends (with
// their imports) must build a pool in which each service is found.
TEST_P(ServiceSmokeTest, ReflectionResolvesEveryListedService) {
  Running r = StartService(GetParam().binary, GetParam().required_args);
  ASSERT_FALSE(r.grpc.empty());
  auto services = testing::ResolveServicesOverReflection(r.grpc);
  ASSERT_TRUE(services.ok()) << services.status();
  const std::set<std::string> listed(services->begin(), services->end());
  EXPECT_TRUE(listed.count("grpc.health.v1.Health"));
  EXPECT_TRUE(listed.count(GetParam().grpc_service));
  EXPECT_TRUE(listed.count("grpc.reflection.v1alpha.ServerReflection"));
}

// One line on stderr, non-zero exit: what an operator needs.
void ExpectStartupFailure(const std::string& binary, std::vector<std::string> args,
                          const std::string& expected_text,
                          const std::vector<std::string>& required_args = {}) {
  args.insert(args.end(), required_args.begin(), required_args.end());
  const std::string dir = NewTempDir("bad-" + binary);
  auto process = ChildProcess::Start(ServiceBinary(binary), args, dir + "/stderr.log");
  ASSERT_TRUE(process.ok());
  auto code = (*process)->WaitForExit(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_NE(*code, 0);
  const std::string err = (*process)->Stderr();
  EXPECT_NE(err.find(expected_text), std::string::npos) << err;
  // Exactly one line that is not a structured log line, and it says why.
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(err, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "ts=")) lines.push_back(line);
  }
  ASSERT_EQ(lines.size(), 1u) << err;
  EXPECT_NE(lines[0].find(expected_text), absl::string_view::npos) << err;
}

TEST_P(ServiceSmokeTest, UnknownFlagExitsNonZeroWithOneLine) {
  ExpectStartupFailure(GetParam().binary, {"--no_such_flag=1"}, "no_such_flag");
}

TEST_P(ServiceSmokeTest, UnusableDataDirExitsNonZeroWithOneLine) {
  // A directory cannot be made below a regular file, even by root.
  const std::string file = NewTempDir("file-parent") + "/not-a-dir";
  std::ofstream(file) << "x";
  ExpectStartupFailure(GetParam().binary,
                       {"--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0",
                        absl::StrCat("--data_dir=", file, "/data")},
                       "data_dir");
}

TEST_P(ServiceSmokeTest, PortInUseExitsNonZeroWithOneLine) {
  Running first = StartService(GetParam().binary, GetParam().required_args);
  ASSERT_FALSE(first.grpc.empty());
  ExpectStartupFailure(GetParam().binary,
                       {absl::StrCat("--listen=", first.grpc), "--metrics_listen=127.0.0.1:0",
                        absl::StrCat("--data_dir=", NewTempDir("second"))},
                       "Address already in use", GetParam().required_args);
  ExpectStartupFailure(GetParam().binary,
                       {"--listen=127.0.0.1:0", absl::StrCat("--metrics_listen=", first.metrics),
                        absl::StrCat("--data_dir=", NewTempDir("third"))},
                       first.metrics, GetParam().required_args);
}

TEST_P(ServiceSmokeTest, PlaintextOnAPublicAddressIsRefused) {
  ExpectStartupFailure(GetParam().binary,
                       {"--listen=0.0.0.0:0", "--metrics_listen=127.0.0.1:0",
                        absl::StrCat("--data_dir=", NewTempDir("public"))},
                       "plaintext is served only on loopback", GetParam().required_args);
}

INSTANTIATE_TEST_SUITE_P(AllServices, ServiceSmokeTest, ::testing::ValuesIn(kServices),
                         [](const ::testing::TestParamInfo<ServiceCase>& info) {
                           std::string name = info.param.binary;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace pettube
