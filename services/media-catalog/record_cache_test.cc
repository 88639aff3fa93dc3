#include "services/media-catalog/record_cache.h"

#include <array>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace pettube::catalog {
namespace {

TEST(RecordCacheTest, HoldsWhatIsPutAndFilled) {
  RecordCache cache(1 << 20);
  std::string out;
  EXPECT_FALSE(cache.Get("a", &out));
  cache.Put("a", "one");
  ASSERT_TRUE(cache.Get("a", &out));
  EXPECT_EQ(out, "one");
  cache.Fill("b", "two", cache.Ticket("b"));
  ASSERT_TRUE(cache.Get("b", &out));
  EXPECT_EQ(out, "two");
  cache.Put("a", "three");
  ASSERT_TRUE(cache.Get("a", &out));
  EXPECT_EQ(out, "three");
  cache.Erase("a");
  EXPECT_FALSE(cache.Get("a", &out));
}

TEST(RecordCacheTest, AReadThatBeganBeforeAWriteNeverFills) {
  RecordCache cache(1 << 20);
  std::string out;
  // A reader takes its ticket and reads the old value from the store; a
  // writer stores and puts the new one; the reader's fill must not win.
  const uint64_t ticket = cache.Ticket("a");
  cache.Put("a", "new");
  cache.Fill("a", "old", ticket);
  ASSERT_TRUE(cache.Get("a", &out));
  EXPECT_EQ(out, "new");

  // Nor after a write of unknown fate, nor once the new value was evicted.
  const uint64_t before_erase = cache.Ticket("a");
  cache.Erase("a");
  cache.Fill("a", "old", before_erase);
  EXPECT_FALSE(cache.Get("a", &out));
}

TEST(RecordCacheTest, StaysWithinItsBudget) {
  const size_t capacity = 64 * 1024;  // 1 KiB per shard
  RecordCache cache(capacity);
  const std::string value(300, 'x');
  for (int i = 0; i < 10000; ++i) cache.Put("media-" + std::to_string(i), value);
  EXPECT_LE(cache.bytes(), capacity);
  EXPECT_GT(cache.bytes(), capacity / 2);
  int held = 0;
  std::string out;
  for (int i = 0; i < 10000; ++i) held += cache.Get("media-" + std::to_string(i), &out);
  EXPECT_GT(held, 0);
  EXPECT_LT(held, 10000);
  // A record larger than a shard's share is never held.
  cache.Put("big", std::string(capacity, 'y'));
  EXPECT_FALSE(cache.Get("big", &out));
}

// Readers (ticket, read the "store", fill) race writers (write the store
// under the record's lock, put) on a few records, as RocksDbMediaStore uses
// the cache. Once a write's Put has returned, no read may see an older
// record: a reader that read the store before the write and filled after
// it would put one back.
TEST(RecordCacheTest, ReadersRacingWritersNeverSeeAnOlderRecord) {
  RecordCache cache(1 << 20);
  constexpr int kRecords = 2;
  constexpr int kWrites = 20000;
  absl::Mutex store_mu;
  std::map<std::string, int64_t> store;  // id -> the last version written
  std::array<absl::Mutex, kRecords> record_locks;
  std::array<std::atomic<int64_t>, kRecords> put_returned{};  // per record
  std::atomic<bool> writing{true};
  std::atomic<int64_t> older_seen{0};
  auto id_of = [](int i) { return absl::StrCat("m", i); };
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int64_t version = 1; version <= kWrites; ++version) {
      for (int i = 0; i < kRecords; ++i) {
        absl::MutexLock record(&record_locks[i]);
        {
          absl::MutexLock lock(&store_mu);
          store[id_of(i)] = version;
        }
        cache.Put(id_of(i), absl::StrCat(version));
        put_returned[i].store(version);
      }
    }
    writing.store(false);
  });
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::string out;
      for (int64_t n = r; writing.load(); ++n) {
        const int i = static_cast<int>(n % kRecords);
        const std::string id = id_of(i);
        const int64_t at_least = put_returned[i].load();
        if (cache.Get(id, &out)) {
          if (std::stoll(out) < at_least) older_seen.fetch_add(1);
          if (n % 3 == 0) cache.Erase(id);  // as a failed write would: more misses
          continue;
        }
        const uint64_t ticket = cache.Ticket(id);
        int64_t version;
        {
          absl::MutexLock lock(&store_mu);
          auto it = store.find(id);
          if (it == store.end()) continue;
          version = it->second;
        }
        std::this_thread::yield();  // a wider window for a write to come in
        cache.Fill(id, absl::StrCat(version), ticket);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(older_seen.load(), 0);
}

TEST(RecordCacheTest, AZeroBudgetHoldsNothing) {
  RecordCache cache(0);
  std::string out;
  cache.Put("a", "one");
  EXPECT_FALSE(cache.Get("a", &out));
  EXPECT_EQ(cache.bytes(), 0u);
}

}  // namespace
}  // namespace pettube::catalog
