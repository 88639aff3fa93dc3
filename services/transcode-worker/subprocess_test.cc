#include "services/transcode-worker/subprocess.h"

#include <signal.h>

#include <thread>

#include "gtest/gtest.h"

namespace pettube::transcode {
namespace {

TEST(SubprocessTest, CapturesStdoutStderrAndExitCode) {
  Subprocess::Options o;
  o.argv = {"/usr/bin/env"};
  o.env = {"ONLY=this"};
  auto p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok()) << p.status();
  Subprocess::Result r = (*p)->Wait();
  EXPECT_EQ(r.exit_code, 0);
  // The child sees exactly the environment it was given.
  EXPECT_EQ(r.stdout_text, "ONLY=this\n");
}

TEST(SubprocessTest, ArgumentsAreNotInterpretedByAShell) {
  Subprocess::Options o;
  o.argv = {"/bin/echo", "a; rm -rf /", "$HOME", "`id`"};
  auto p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Wait().stdout_text, "a; rm -rf / $HOME `id`\n");
}

TEST(SubprocessTest, StreamsStdoutLines) {
  Subprocess::Options o;
  o.argv = {"/usr/bin/printf", "one\ntwo\nthree"};
  std::vector<std::string> lines;
  o.on_stdout_line = [&](absl::string_view l) { lines.emplace_back(l); };
  auto p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok());
  Subprocess::Result r = (*p)->Wait();
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_TRUE(r.stdout_text.empty());
}

TEST(SubprocessTest, KeepsTheTailOfStderr) {
  Subprocess::Options o;
  o.argv = {"/bin/ls", "/definitely/not/here"};
  o.stderr_tail_bytes = 16;
  auto p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok());
  Subprocess::Result r = (*p)->Wait();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.stderr_tail.size(), 16u);
  EXPECT_NE(r.stderr_tail.find("directory"), std::string::npos) << r.stderr_tail;
}

TEST(SubprocessTest, TimeoutKillsTheChild) {
  Subprocess::Options o;
  o.argv = {"/bin/sleep", "30"};
  o.timeout = absl::Milliseconds(200);
  auto p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok());
  Subprocess::Result r = (*p)->Wait();
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_LT(r.elapsed, absl::Seconds(10));
}

TEST(SubprocessTest, CancelFromAnotherThreadKillsTheChild) {
  Subprocess::Options o;
  o.argv = {"/bin/sleep", "30"};
  auto p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok());
  std::thread canceller([&] { (*p)->Cancel(); });
  Subprocess::Result r = (*p)->Wait();
  canceller.join();
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(SubprocessTest, MissingProgramExitsWith127) {
  Subprocess::Options o;
  o.argv = {"/no/such/program"};
  auto p = Subprocess::Start(o);
  ASSERT_TRUE(p.ok());
  Subprocess::Result r = (*p)->Wait();
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.stderr_tail.find("exec failed"), std::string::npos);
}

TEST(SubprocessTest, EmptyArgvIsRefused) {
  EXPECT_EQ(Subprocess::Start({}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pettube::transcode
