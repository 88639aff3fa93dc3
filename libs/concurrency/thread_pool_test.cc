#include "libs/concurrency/thread_pool.h"

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace pettube::concurrency {
namespace {

TEST(ThreadPoolTest, RunsEveryScheduledWorkAndDrainsTheQueueOnDestruction) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(3);
    for (int i = 0; i < 1000; ++i) pool.Schedule([&] { ran.fetch_add(1); });
  }
  EXPECT_EQ(ran.load(), 1000);
}

TEST(ThreadPoolTest, ABoundedQueueRefusesWorkBeyondItsBound) {
  std::atomic<int> ran{0};
  absl::Notification running, release;
  {
    ThreadPool pool(1, /*max_queued=*/2);
    ASSERT_TRUE(pool.TrySchedule([&] {
      running.Notify();
      release.WaitForNotification();
      ran.fetch_add(1);
    }));
    running.WaitForNotification();  // the thread is busy: the queue is empty
    EXPECT_TRUE(pool.TrySchedule([&] { ran.fetch_add(1); }));
    EXPECT_TRUE(pool.TrySchedule([&] { ran.fetch_add(1); }));
    EXPECT_FALSE(pool.TrySchedule([&] { ran.fetch_add(100); }));  // two wait already
    pool.Schedule([&] { ran.fetch_add(1); });                     // Schedule ignores the bound
    release.Notify();
  }
  EXPECT_EQ(ran.load(), 4);  // the refused work never ran
}

TEST(ThreadPoolTest, AnUnboundedQueueTakesEverything) {
  absl::Notification release;
  ThreadPool pool(1);
  pool.Schedule([&] { release.WaitForNotification(); });
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(pool.TrySchedule([] {}));
  release.Notify();
}

TEST(ThreadPoolTest, WorkRunsOnThePoolsThreadsSideBySide) {
  ThreadPool pool(2);
  absl::Mutex mu;
  std::set<std::thread::id> ids;
  absl::Notification both_started, release;
  int started = 0;
  for (int i = 0; i < 2; ++i) {
    pool.Schedule([&] {
      {
        absl::MutexLock lock(&mu);
        ids.insert(std::this_thread::get_id());
        if (++started == 2) both_started.Notify();
      }
      release.WaitForNotification();  // both must be running at once
    });
  }
  both_started.WaitForNotification();
  release.Notify();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 0u);
}

}  // namespace
}  // namespace pettube::concurrency
