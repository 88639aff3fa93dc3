#include "services/broker/committer.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "services/broker/hooked_store.h"
#include "services/broker/rocksdb_broker_store.h"

namespace pettube::broker {
namespace {

TEST(CommitterTest, AGroupHoldsAtMostItsByteBudgetOfOps) {
  auto store =
      RocksDbBrokerStore::Open(absl::StrCat(std::getenv("TEST_TMPDIR"), "/c"), absl::Hours(1));
  ASSERT_TRUE(store.ok()) << store.status();
  // The first write is held, so the ten ops behind it queue up together.
  HookedStore hooked(store->get());
  absl::Notification first_reached, release;
  std::atomic<bool> first{true};
  hooked.SetWriteHook([&](BrokerStore::Batch&) {
    if (first.exchange(false)) {
      first_reached.Notify();
      release.WaitForNotification();
    }
    return absl::OkStatus();
  });
  absl::Mutex mu;
  std::vector<size_t> group_sizes;
  {
    Committer committer(
        hooked, /*allow_sync=*/false,
        [&](size_t ops, size_t, absl::Duration) {
          absl::MutexLock lock(&mu);
          group_sizes.push_back(ops);
        },
        /*max_group_bytes=*/1000);
    auto put = [](uint64_t seq) {
      return [seq](BrokerStore::Batch& b) {
        StoredEvent e;
        e.sequence = seq;
        e.wire = std::string(300, 'x');
        b.PutEvent(e);
      };
    };
    committer.Submit({put(1), nullptr, false, false, 300});
    ASSERT_TRUE(first_reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
    for (uint64_t seq = 2; seq <= 11; ++seq)
      committer.Submit({put(seq), nullptr, false, false, 300});
    release.Notify();
  }  // the destructor commits what is queued
  absl::MutexLock lock(&mu);
  // 1 held alone, then ten 300-byte ops in groups of at most 3 (900 bytes).
  ASSERT_GE(group_sizes.size(), 5u);
  EXPECT_EQ(group_sizes[0], 1u);
  size_t total = 0;
  for (size_t i = 1; i < group_sizes.size(); ++i) {
    EXPECT_LE(group_sizes[i], 3u);
    total += group_sizes[i];
  }
  EXPECT_EQ(total, 10u);
}

}  // namespace
}  // namespace pettube::broker
