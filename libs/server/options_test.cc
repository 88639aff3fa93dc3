#include "libs/server/options.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace pettube::server {
namespace {

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

TEST(ParseHostPortTest, AcceptsHostAndPortIncludingZero) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(ParseHostPort("listen", "127.0.0.1:0", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(ParseHostPort("listen", "[::1]:8080", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 8080);
}

TEST(ParseHostPortTest, RejectsMissingOrBadPortNamingTheFlag) {
  std::string host;
  int port;
  const absl::Status no_port = ParseHostPort("metrics_listen", "localhost", &host, &port);
  EXPECT_EQ(no_port.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_port.message().find("metrics_listen"), absl::string_view::npos);
  EXPECT_FALSE(ParseHostPort("listen", "127.0.0.1:70000", &host, &port).ok());
  EXPECT_FALSE(ParseHostPort("listen", "127.0.0.1:http", &host, &port).ok());
}

// Takes two mutexes in both orders: a potential deadlock.
void InvertLockOrder() {
  absl::Mutex a, b;
  {
    absl::MutexLock la(&a);
    absl::MutexLock lb(&b);
  }
  absl::MutexLock lb(&b);
  absl::MutexLock la(&a);
}

// Runs in a death test's child: parses `flag` (if any) as a server would.
[[noreturn]] void ParseThenInvert(const char* flag) {
  std::vector<char*> argv = {const_cast<char*>("server"),
                             const_cast<char*>("--listen=127.0.0.1:0")};
  if (flag != nullptr) argv.push_back(const_cast<char*>(flag));
  ParseFlagsOrExit(static_cast<int>(argv.size()), argv.data(), "test");
  InvertLockOrder();
  std::exit(0);
}

TEST(MutexDeadlockDetectionTest, OffByDefaultOnWithTheFlag) {
  EXPECT_EXIT(ParseThenInvert(nullptr), testing::ExitedWithCode(0), "");
  EXPECT_DEATH(ParseThenInvert("--mutex_deadlock_detection=true"), "deadlock");
}

TEST(PrepareDataDirTest, CreatesMissingDirectories) {
  const std::string dir = TmpDir() + "/a/b/c";
  ASSERT_TRUE(PrepareDataDir(dir).ok());
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
}

TEST(PrepareDataDirTest, RejectsAFile) {
  const std::string file = TmpDir() + "/plain-file";
  std::ofstream(file) << "x";
  const absl::Status s = PrepareDataDir(file);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(file), absl::string_view::npos);
}

}  // namespace
}  // namespace pettube::server
