// Supervisor with stand-in workers: /bin/sleep processes (a worker's
// lifetime is all the supervisor sees), started for backlog and stopped.
#include "services/transcode-supervisor/supervisor.h"

#include "gtest/gtest.h"

namespace pettube::transcode {
namespace {

TEST(WorkersToStartTest, OnePerJobUpToTheMaximum) {
  EXPECT_EQ(WorkersToStart(0, 0, 4), 0);
  EXPECT_EQ(WorkersToStart(3, 0, 4), 3);
  EXPECT_EQ(WorkersToStart(10, 1, 4), 3);
  EXPECT_EQ(WorkersToStart(2, 4, 4), 0);
  EXPECT_EQ(WorkersToStart(-1, 0, 4), 0);
}

Supervisor::Options SleepWorkers(const std::string& seconds, int max) {
  Supervisor::Options o;
  o.max_workers = max;
  o.worker_argv = {"/bin/sleep", seconds};
  o.stop_grace = absl::Seconds(5);
  return o;
}

TEST(SupervisorTest, NoBacklogNoWorkers) {
  Supervisor s(SleepWorkers("30", 2));
  s.OnStats(0, 0);
  EXPECT_FALSE(s.WaitFor([](const Supervisor::Counts& c) { return c.started_total > 0; },
                         absl::Milliseconds(200)));
}

TEST(SupervisorTest, StartsOnePerJobUpToTheMaximumAndStopsThemOnShutdown) {
  Supervisor s(SleepWorkers("30", 2));
  s.OnStats(5, 0);
  ASSERT_TRUE(
      s.WaitFor([](const Supervisor::Counts& c) { return c.running == 2; }, absl::Seconds(10)));
  EXPECT_FALSE(s.WaitFor([](const Supervisor::Counts& c) { return c.started_total > 2; },
                         absl::Milliseconds(200)));
  s.Shutdown();
  EXPECT_EQ(s.counts().running, 0);
  EXPECT_EQ(s.counts().exited_total, 2);
}

TEST(SupervisorTest, ReplacesWorkersThatExitWhileJobsRemainAndBacksOffCrashes) {
  // "/bin/false" exits at once with 1: a crashing worker.
  Supervisor::Options o = SleepWorkers("0", 1);
  o.worker_argv = {"/bin/false"};
  Supervisor s(o);
  s.OnStats(1, 0);
  ASSERT_TRUE(s.WaitFor([](const Supervisor::Counts& c) { return c.exited_total >= 1; },
                        absl::Seconds(10)));
  // The next start waits for the backoff (2 s after the first crash).
  EXPECT_FALSE(s.WaitFor([](const Supervisor::Counts& c) { return c.started_total >= 2; },
                         absl::Milliseconds(500)));
  EXPECT_TRUE(s.WaitFor([](const Supervisor::Counts& c) { return c.started_total >= 2; },
                        absl::Seconds(10)));
}

TEST(SupervisorTest, WorkersExitingByThemselvesLeaveZeroProcesses) {
  // Workers that exit cleanly (idle exit) once the queue is empty.
  Supervisor s(SleepWorkers("0.2", 3));
  s.OnStats(2, 0);
  ASSERT_TRUE(s.WaitFor([](const Supervisor::Counts& c) { return c.started_total == 2; },
                        absl::Seconds(10)));
  s.OnStats(0, 0);
  ASSERT_TRUE(
      s.WaitFor([](const Supervisor::Counts& c) { return c.running == 0 && c.exited_total == 2; },
                absl::Seconds(10)));
  EXPECT_EQ(s.counts().started_total, 2);
}

}  // namespace
}  // namespace pettube::transcode
