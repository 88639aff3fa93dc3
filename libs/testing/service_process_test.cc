#include "libs/testing/service_process.h"

#include <signal.h>

#include "gtest/gtest.h"

namespace pettube::testing {
namespace {

ServiceProcess::Options FakeService() {
  ServiceProcess::Options options;
  options.binary = RunfilePath("libs/testing/fake_service");
  options.data_dir = NewTempDir("data");
  options.args = {"--own_flag=1"};
  return options;
}

TEST(ServiceProcessTest, StartsWaitsForReadyAndReadsTheAddresses) {
  auto service = ServiceProcess::Start(FakeService());
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ((*service)->grpc().rfind("127.0.0.1:", 0), 0u) << (*service)->ready_line();
  EXPECT_NE((*service)->grpc(), "127.0.0.1:0");
  EXPECT_EQ((*service)->metrics().rfind("127.0.0.1:", 0), 0u);
  EXPECT_NE((*service)->grpc(), (*service)->metrics());
  // --listen, --metrics_listen, --data_dir and the binary's own flag.
  EXPECT_EQ((*service)->ReadyField("args"), "4");
  EXPECT_EQ((*service)->ReadyField("objects"), "");
}

TEST(ServiceProcessTest, LeftOutCommonFlagsAreNotPassed) {
  ServiceProcess::Options options = FakeService();
  options.data_dir.clear();
  options.args.clear();
  auto service = ServiceProcess::Start(options);
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ((*service)->ReadyField("args"), "2");
}

TEST(ServiceProcessTest, StopSendsSigtermAndReturnsTheExitCode) {
  auto service = ServiceProcess::Start(FakeService());
  ASSERT_TRUE(service.ok()) << service.status();
  auto code = (*service)->Stop();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
}

TEST(ServiceProcessTest, KillEndsItWithSigkill) {
  auto service = ServiceProcess::Start(FakeService());
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE((*service)->Kill().ok());
  auto code = (*service)->process().WaitForExit(absl::ZeroDuration());
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 128 + SIGKILL);
}

TEST(ServiceProcessTest, RestartOnTheSamePortsListensWhereItWas) {
  auto service = ServiceProcess::Start(FakeService());
  ASSERT_TRUE(service.ok()) << service.status();
  const std::string grpc = (*service)->grpc(), metrics = (*service)->metrics();
  ASSERT_TRUE((*service)->Restart(/*same_ports=*/true).ok());
  EXPECT_EQ((*service)->grpc(), grpc);
  EXPECT_EQ((*service)->metrics(), metrics);
  ASSERT_TRUE((*service)->Restart(/*same_ports=*/false).ok());
  EXPECT_EQ((*service)->ReadyField("args"), "4");
}

TEST(ServiceProcessTest, ExitBeforeReadyIsAnErrorWithTheStderr) {
  ServiceProcess::Options options = FakeService();
  options.args = {"--fail"};
  auto service = ServiceProcess::Start(options);
  ASSERT_FALSE(service.ok());
  EXPECT_EQ(service.status().code(), absl::StatusCode::kFailedPrecondition) << service.status();
  EXPECT_NE(service.status().message().find("failing as asked"), absl::string_view::npos)
      << service.status();
  EXPECT_EQ(service.status().message().rfind("fake_service: ", 0), 0u) << service.status();
}

}  // namespace
}  // namespace pettube::testing
