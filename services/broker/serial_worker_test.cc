#include "services/broker/serial_worker.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"

namespace pettube::broker {
namespace {

TEST(SerialWorkerTest, RunsTasksInOrderOnItsOwnThread) {
  std::vector<int> order;
  std::thread::id ran_on;
  absl::Notification done;
  {
    SerialWorker worker;
    for (int i = 0; i < 100; ++i) worker.Post([&order, i] { order.push_back(i); });
    worker.Post([&] {
      ran_on = std::this_thread::get_id();
      done.Notify();
    });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(SerialWorkerTest, DestructionWaitsForTheRunningTask) {
  absl::Notification started, release;
  bool finished = false;
  auto worker = std::make_unique<SerialWorker>();
  worker->Post([&] {
    started.Notify();
    release.WaitForNotification();
    finished = true;
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  std::thread releaser([&] { release.Notify(); });
  worker.reset();
  releaser.join();
  EXPECT_TRUE(finished);
}

}  // namespace
}  // namespace pettube::broker
