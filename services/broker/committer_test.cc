#include "services/broker/committer.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
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

// Publishes (`overlaps`) are prepared while the group before them is being
// written; any other op waits until every earlier group is written and done.
TEST(CommitterTest, OnlyOverlappingOpsArePreparedWhileAGroupIsBeingWritten) {
  auto store =
      RocksDbBrokerStore::Open(absl::StrCat(std::getenv("TEST_TMPDIR"), "/o"), absl::Hours(1));
  ASSERT_TRUE(store.ok()) << store.status();
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
  std::vector<std::string> log;
  auto note = [&](const std::string& what) {
    absl::MutexLock lock(&mu);
    log.push_back(what);
  };
  auto op = [&](const std::string& name, uint64_t seq, bool overlaps) {
    Committer::Op o;
    o.prepare = [&note, name, seq](BrokerStore::Batch& b) {
      note(name + ".prepare");
      StoredEvent e;
      e.sequence = seq;
      b.PutEvent(e);
    };
    o.done = [&note, name](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      note(name + ".done");
    };
    o.sync = false;
    o.overlaps = overlaps;
    return o;
  };
  absl::Notification b_prepared;
  {
    Committer committer(hooked, /*allow_sync=*/false);
    committer.Submit(op("a", 1, true));
    ASSERT_TRUE(first_reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
    Committer::Op b = op("b", 2, true);
    auto inner = std::move(b.prepare);
    b.prepare = [&, inner](BrokerStore::Batch& batch) {
      inner(batch);
      b_prepared.Notify();
    };
    committer.Submit(std::move(b));
    // With "a" still held in its write: "b" is prepared meanwhile (else
    // this wait fails), "c" is not until "a" is done.
    ASSERT_TRUE(b_prepared.WaitForNotificationWithTimeout(absl::Seconds(10)));
    committer.Submit(op("c", 3, false));
    committer.Submit(op("d", 4, true));
    release.Notify();
  }  // the destructor commits what is queued
  absl::MutexLock lock(&mu);
  const std::vector<std::string> expected = {"a.prepare", "b.prepare", "a.done", "c.prepare",
                                             "d.prepare", "b.done",    "c.done", "d.done"};
  EXPECT_EQ(log, expected);
}

}  // namespace
}  // namespace pettube::broker
