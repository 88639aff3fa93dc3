#include "services/broker/event_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace pettube::broker {
namespace {

std::shared_ptr<const StoredEvent> Event(uint64_t seq, size_t size) {
  auto e = std::make_shared<StoredEvent>();
  e->sequence = seq;
  e->wire = std::string(size, 'x');
  return e;
}

TEST(EventCacheTest, FindsWhatWasInsertedAndNothingElse) {
  EventCache cache(8, 1 << 20);
  cache.Insert(Event(3, 10));
  ASSERT_NE(cache.Find(3), nullptr);
  EXPECT_EQ(cache.Find(3)->sequence, 3u);
  EXPECT_EQ(cache.Find(4), nullptr);
  EXPECT_EQ(cache.Find(11), nullptr);  // same slot as 3, different event
}

TEST(EventCacheTest, NewerEventReplacesTheOneInItsSlot) {
  EventCache cache(8, 1 << 20);
  cache.Insert(Event(3, 10));
  cache.Insert(Event(11, 20));
  EXPECT_EQ(cache.Find(3), nullptr);
  ASSERT_NE(cache.Find(11), nullptr);
  EXPECT_EQ(cache.bytes(), 20u);
}

TEST(EventCacheTest, StaysWithinItsByteBudget) {
  EventCache cache(1024, 6400);  // events up to 100 bytes
  for (uint64_t seq = 1; seq <= 200; ++seq) cache.Insert(Event(seq, 100));
  EXPECT_LE(cache.bytes(), 6400u);
  EXPECT_EQ(cache.Find(100), nullptr);  // budget was spent by then
  cache.Insert(Event(5000, 101));       // too big to cache at all
  EXPECT_EQ(cache.Find(5000), nullptr);
}

TEST(EventCacheTest, WhenTheBytesRunOutTheNewestEventsAreKept) {
  EventCache cache(1024, 6400);  // 64 events of 100 bytes, far fewer than the slots
  for (uint64_t seq = 1; seq <= 1000; ++seq) cache.Insert(Event(seq, 100));
  EXPECT_LE(cache.bytes(), 6400u);
  for (uint64_t seq = 937; seq <= 1000; ++seq) EXPECT_NE(cache.Find(seq), nullptr) << seq;
  EXPECT_EQ(cache.Find(936), nullptr);
  EXPECT_EQ(cache.Find(1), nullptr);
}

TEST(EventCacheTest, ReplacedAndErasedEventsDoNotPileUp) {
  EventCache cache(8, 1 << 20);
  for (uint64_t seq = 1; seq <= 10000; ++seq) cache.Insert(Event(seq, 10));
  for (uint64_t seq = 9993; seq <= 10000; ++seq) EXPECT_NE(cache.Find(seq), nullptr) << seq;
  EXPECT_EQ(cache.bytes(), 80u);
  cache.EraseBefore(10001);
  EXPECT_EQ(cache.bytes(), 0u);
  cache.Insert(Event(10001, 10));
  EXPECT_NE(cache.Find(10001), nullptr);
}

TEST(EventCacheTest, EraseBeforeForgetsOlderEvents) {
  EventCache cache(16, 1 << 20);
  for (uint64_t seq = 1; seq <= 10; ++seq) cache.Insert(Event(seq, 10));
  cache.EraseBefore(6);
  EXPECT_EQ(cache.Find(5), nullptr);
  EXPECT_NE(cache.Find(6), nullptr);
  EXPECT_EQ(cache.bytes(), 50u);
}

}  // namespace
}  // namespace pettube::broker
