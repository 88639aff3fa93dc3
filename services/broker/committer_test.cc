#include "services/broker/committer.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
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

// A store whose first sync waits until `release` and then returns `result`;
// `reached` tells that it is waiting (its groups are written by then).
// Counts writes and syncs.
struct HeldFirstSync {
  explicit HeldFirstSync(BrokerStore* inner, absl::Status result = absl::OkStatus())
      : store(inner) {
    store.SetWriteHook([this](BrokerStore::Batch&) {
      writes.fetch_add(1);
      return absl::OkStatus();
    });
    store.SetSyncHook([this, result] {
      syncs.fetch_add(1);
      if (first.exchange(false)) {
        reached.Notify();
        release.WaitForNotification();
        return result;
      }
      return absl::OkStatus();
    });
  }
  HookedStore store;
  absl::Notification reached, release;
  std::atomic<bool> first{true};
  std::atomic<int> writes{0}, syncs{0};
};

// Ops that note their prepare and done in a shared log.
struct NotedOps {
  Committer::Op Make(const std::string& name, uint64_t seq, bool overlaps) {
    Committer::Op o;
    o.prepare = [this, name, seq](BrokerStore::Batch& b) {
      Note(name + ".prepare");
      StoredEvent e;
      e.sequence = seq;
      b.PutEvent(e);
    };
    o.done = [this, name](const absl::Status& s) { Note(name + (s.ok() ? ".done" : ".failed")); };
    o.overlaps = overlaps;
    return o;
  }
  void Note(const std::string& what) {
    absl::MutexLock lock(&mu);
    log.push_back(what);
  }
  bool Has(const std::string& what) {
    absl::MutexLock lock(&mu);
    return std::find(log.begin(), log.end(), what) != log.end();
  }
  // Where `what` is in the log (its size if absent).
  size_t At(const std::string& what) {
    absl::MutexLock lock(&mu);
    return std::find(log.begin(), log.end(), what) - log.begin();
  }
  absl::Mutex mu;
  std::vector<std::string> log ABSL_GUARDED_BY(mu);
};

std::unique_ptr<RocksDbBrokerStore> OpenStore(const std::string& name) {
  auto store =
      RocksDbBrokerStore::Open(absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name), absl::Hours(1));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Publishes (`overlaps`) are prepared and written while the group before
// them is being synced; any other op waits until every earlier group is
// synced and done. Nothing is done before the sync that covers it.
TEST(CommitterTest, OnlyOverlappingOpsArePreparedWhileAGroupIsBeingSynced) {
  auto store = OpenStore("o");
  ASSERT_NE(store, nullptr);
  HeldFirstSync held(store.get());
  NotedOps ops;
  {
    Committer committer(held.store, /*allow_sync=*/true);
    committer.Submit(ops.Make("a", 1, true));
    ASSERT_TRUE(held.reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
    absl::Notification b_written;
    held.store.SetWriteHook([&](BrokerStore::Batch&) {
      if (held.writes.fetch_add(1) == 1) b_written.Notify();
      return absl::OkStatus();
    });
    committer.Submit(ops.Make("b", 2, true));
    // With "a"'s sync held: "b" is prepared and written meanwhile (else
    // this wait fails), "a" is not done, "c" is not prepared until it is.
    ASSERT_TRUE(b_written.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_FALSE(ops.Has("a.done"));
    committer.Submit(ops.Make("c", 3, false));
    committer.Submit(ops.Make("d", 4, true));
    held.release.Notify();
  }                                                  // the destructor commits what is queued
  EXPECT_LT(ops.At("b.prepare"), ops.At("a.done"));  // prepared during a's sync
  EXPECT_GT(ops.At("c.prepare"), ops.At("a.done"));  // waited for the earlier syncs
  EXPECT_GT(ops.At("c.prepare"), ops.At("b.done"));
  EXPECT_LT(ops.At("c.prepare"), ops.At("d.prepare"));
  // Done in submission order, each exactly once.
  EXPECT_LT(ops.At("a.done"), ops.At("b.done"));
  EXPECT_LT(ops.At("b.done"), ops.At("c.done"));
  EXPECT_LT(ops.At("c.done"), ops.At("d.done"));
  absl::MutexLock lock(&ops.mu);
  EXPECT_EQ(ops.log.size(), 8u);
}

// One sync covers every group written while the one before it ran.
TEST(CommitterTest, OneSyncCoversTheGroupsWrittenDuringTheLastOne) {
  auto store = OpenStore("s");
  ASSERT_NE(store, nullptr);
  HeldFirstSync held(store.get());
  NotedOps ops;
  // The syncs made when each op was done.
  absl::Mutex mu;
  std::map<std::string, int> syncs_at_done;
  auto op = [&](const std::string& name, uint64_t seq) {
    Committer::Op o = ops.Make(name, seq, true);
    o.done = [&, name](const absl::Status& s) {
      EXPECT_TRUE(s.ok()) << s;
      absl::MutexLock lock(&mu);
      syncs_at_done[name] = held.syncs.load();
    };
    return o;
  };
  {
    Committer committer(held.store, /*allow_sync=*/true);
    absl::Notification a_done;
    Committer::Op a = op("a", 1);
    a.done = [&](const absl::Status&) { a_done.Notify(); };
    committer.Submit(std::move(a));
    ASSERT_TRUE(held.reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
    absl::Notification d_writing;
    held.store.SetWriteHook([&](BrokerStore::Batch&) {
      // b, c and d in one group or several: the last one holds d.
      if (ops.Has("d.prepare")) d_writing.Notify();
      return absl::OkStatus();
    });
    committer.Submit(op("b", 2));
    committer.Submit(op("c", 3));
    committer.Submit(op("d", 4));
    ASSERT_TRUE(d_writing.WaitForNotificationWithTimeout(absl::Seconds(10)));
    // Prepared only once d's group is written and handed to the syncer;
    // holds the committer thread until "a" is done, so nothing else is
    // written before the syncer takes what was written.
    absl::Notification m_prepared;
    Committer::Op m;
    m.overlaps = true;
    m.prepare = [&](BrokerStore::Batch&) {
      m_prepared.Notify();
      a_done.WaitForNotification();
    };
    committer.Submit(std::move(m));
    ASSERT_TRUE(m_prepared.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_EQ(held.syncs.load(), 1);
    held.release.Notify();
  }
  absl::MutexLock lock(&mu);
  // a's sync, then one for b, c and d.
  EXPECT_EQ(syncs_at_done["b"], 2);
  EXPECT_EQ(syncs_at_done["c"], 2);
  EXPECT_EQ(syncs_at_done["d"], 2);
}

// A failed sync fails the groups it covered, and every op after it fails
// unwritten: the store still shows those writes, durable or not.
TEST(CommitterTest, AFailedSyncFailsEveryLaterOpUnwritten) {
  auto store = OpenStore("f");
  ASSERT_NE(store, nullptr);
  HeldFirstSync held(store.get(), absl::UnavailableError("fsync failed"));
  NotedOps ops;
  int writes_after_failure = 0;
  {
    Committer committer(held.store, /*allow_sync=*/true);
    committer.Submit(ops.Make("a", 1, true));
    ASSERT_TRUE(held.reached.WaitForNotificationWithTimeout(absl::Seconds(10)));
    held.release.Notify();
    EXPECT_EQ(committer.SubmitAndWait(ops.Make("wait", 0, true)).code(),
              absl::StatusCode::kUnavailable);
    writes_after_failure = held.writes.load();
    EXPECT_EQ(committer.SubmitAndWait(ops.Make("b", 2, true)).code(),
              absl::StatusCode::kUnavailable);
    EXPECT_EQ(committer.SubmitAndWait(ops.Make("c", 3, false)).code(),
              absl::StatusCode::kUnavailable);
  }
  EXPECT_TRUE(ops.Has("a.failed"));
  EXPECT_TRUE(ops.Has("b.failed"));
  EXPECT_TRUE(ops.Has("c.failed"));
  EXPECT_EQ(held.writes.load(), writes_after_failure);  // b and c never written
  EXPECT_EQ(held.syncs.load(), 1);
}

// Without allow_sync (tests that trade crash safety for speed) nothing is
// synced, and ops are done all the same.
TEST(CommitterTest, WithoutAllowSyncNothingIsSynced) {
  auto store = OpenStore("n");
  ASSERT_NE(store, nullptr);
  HeldFirstSync held(store.get());
  NotedOps ops;
  {
    Committer committer(held.store, /*allow_sync=*/false);
    EXPECT_TRUE(committer.SubmitAndWait(ops.Make("a", 1, true)).ok());
    EXPECT_TRUE(committer.SubmitAndWait(ops.Make("b", 2, false)).ok());
  }
  EXPECT_EQ(held.syncs.load(), 0);
  EXPECT_EQ(held.writes.load(), 2);
}

}  // namespace
}  // namespace pettube::broker
