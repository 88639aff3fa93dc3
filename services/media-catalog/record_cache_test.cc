#include "services/media-catalog/record_cache.h"

#include <string>

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

TEST(RecordCacheTest, AZeroBudgetHoldsNothing) {
  RecordCache cache(0);
  std::string out;
  cache.Put("a", "one");
  EXPECT_FALSE(cache.Get("a", &out));
  EXPECT_EQ(cache.bytes(), 0u);
}

}  // namespace
}  // namespace pettube::catalog
