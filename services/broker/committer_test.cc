#include "services/broker/committer.h"

#include <algorithm>
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

// A store whose first write waits until `release`; `reached` tells that it
// is waiting. Ops submitted meanwhile queue up behind it.
struct HeldFirstWrite {
  explicit HeldFirstWrite(BrokerStore* inner) : store(inner) {
    store.SetWriteHook([this](BrokerStore::Batch&) {
      if (first.exchange(false)) {
        reached.Notify();
        release.WaitForNotification();
      }
      return absl::OkStatus();
    });
  }
  HookedStore store;
  absl::Notification reached, release;
  std::atomic<bool> first{true};
};

TEST(CommitterTest, AGroupHoldsAtMostItsByteBudgetOfOps) {
  auto store =
      RocksDbBrokerStore::Open(absl::StrCat(std::getenv("TEST_TMPDIR"), "/c"), absl::Hours(1));
  ASSERT_TRUE(store.ok()) << store.status();
  // The first write is held, so the ten ops behind it queue up together.
  HeldFirstWrite held(store->get());
  absl::Mutex mu;
  std::vector<size_t> group_sizes;
  {
    Committer committer(
        held.store, /*allow_sync=*/false,
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
    ASSERT_TRUE(held.reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
    for (uint64_t seq = 2; seq <= 11; ++seq)
      committer.Submit({put(seq), nullptr, false, false, 300});
    held.release.Notify();
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
  HeldFirstWrite held(store->get());
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
    Committer committer(held.store, /*allow_sync=*/false);
    committer.Submit(op("a", 1, true));
    ASSERT_TRUE(held.reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
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
    held.release.Notify();
  }  // the destructor commits what is queued
  absl::MutexLock lock(&mu);
  // Whether "b" is written alone (a writer freed by "a" takes it at once) or
  // in "c"'s group depends on timing; what holds either way:
  ASSERT_EQ(log.size(), 8u);
  auto at = [&](const std::string& what) {
    return std::find(log.begin(), log.end(), what) - log.begin();
  };
  EXPECT_EQ(at("a.prepare"), 0);
  EXPECT_LT(at("b.prepare"), at("a.done"));  // prepared during a's write
  EXPECT_GT(at("c.prepare"), at("a.done"));  // waited for the earlier writes
  EXPECT_LT(at("c.prepare"), at("d.prepare"));
  // Done in submission order.
  EXPECT_LT(at("a.done"), at("b.done"));
  EXPECT_LT(at("b.done"), at("c.done"));
  EXPECT_LT(at("c.done"), at("d.done"));
}

}  // namespace
}  // namespace pettube::broker
