// Feeds Registry::Serialize() to Prometheus' own parser and linter
// (`promtool check metrics`), the check closest to a real scrape without
// running a Prometheus server.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "libs/metrics/registry.h"

namespace pettube::metrics {
namespace {

constexpr char kPromtool[] = "/usr/bin/promtool";

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs `command` through the shell, capturing stdout and stderr together.
CommandResult RunShell(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.output.append(buffer, n);
  }
  const int status = pclose(pipe);
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

// Counters, gauges and histograms with constant labels, special values and
// label values that need every escape.
void Populate(Registry& registry) {
  auto& requests =
      BuildCounter()
          .Name("pettube_test_requests_total")
          .Help("Requests served, by \"code\".\nSecond line \\ end.")
          .Labels({{"service", "promtool_test"}})
          .Register(registry);
  requests.Add({{"code", "200"}}).Increment(41);
  requests.Add({{"code", "404"}}).Increment(0.5);
  requests.Add({{"path", "C:\\media\\\"cat\".mp4\nnext line"}}).Increment();
  requests.Add({{"path", "caf\xc3\xa9 {braces}, commas=equals"}}).Increment();
  requests.Add({{"path", ""}}).Increment();

  auto& backlog = BuildGauge()
                      .Name("pettube_test_backlog_events")
                      .Help("Undelivered events per subscription.")
                      .Register(registry);
  backlog.Add({{"subscription", "a"}}).Set(12);
  backlog.Add({{"subscription", "inf"}})
      .Set(std::numeric_limits<double>::infinity());
  backlog.Add({{"subscription", "-inf"}})
      .Set(-std::numeric_limits<double>::infinity());
  backlog.Add({{"subscription", "nan"}})
      .Set(std::numeric_limits<double>::quiet_NaN());
  backlog.Add({{"subscription", "tiny"}}).Set(1.5e-9);
  backlog.Add({{"subscription", "huge"}}).Set(3e20);

  auto& latency = BuildHistogram()
                      .Name("pettube_test_request_duration_seconds")
                      .Help("Request latency.")
                      .Register(registry);
  Histogram& get = latency.Add({{"method", "Get"}}, DefaultLatencyBuckets());
  for (double v : {0.0001, 0.0005, 0.003, 0.2, 1.0, 9.99, 60.0}) get.Observe(v);
  latency.Add({{"method", "Put \"quoted\""}}, ExponentialBuckets(0.001, 3, 5))
      .Observe(0.1);
}

TEST(RegistryPromtoolTest, PromtoolAcceptsSerializedOutput) {
  // Fail, not skip: without promtool this test would prove nothing.
  ASSERT_EQ(access(kPromtool, X_OK), 0)
      << kPromtool << " is missing: apt-get install prometheus";
  const char* tmpdir = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmpdir, nullptr) << "run under bazel test";

  Registry registry;
  Populate(registry);
  const std::string text = registry.Serialize();
  const std::string path = std::string(tmpdir) + "/metrics.txt";
  {
    std::ofstream file(path, std::ios::binary);
    file << text;
    ASSERT_TRUE(file.good()) << "cannot write " << path;
  }

  const CommandResult result =
      RunShell(std::string(kPromtool) + " check metrics < '" + path + "'");
  EXPECT_EQ(result.exit_code, 0) << "promtool says:\n"
                                 << result.output << "\nfor input:\n"
                                 << text;
}

}  // namespace
}  // namespace pettube::metrics
