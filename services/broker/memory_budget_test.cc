#include "services/broker/memory_budget.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/broker/rocksdb_broker_store.h"

namespace pettube::broker {
namespace {

TEST(MemoryBudgetTest, TheDefaultGivesHalfToMemtablesAndTheRestToTheOtherParts) {
  auto budget = MemoryBudget::Divide(MemoryBudget::kDefaultBytes);
  ASSERT_TRUE(budget.ok()) << budget.status();
  EXPECT_EQ(budget->write_buffer_bytes, 12u << 20);
  EXPECT_EQ(budget->dedup_index_bytes, 2u << 20);
  EXPECT_EQ(budget->block_cache_bytes, 4u << 20);
  EXPECT_EQ(budget->event_cache_bytes, 4u << 20);
  EXPECT_EQ(budget->allocator_free_keep_bytes, 2u << 20);
}

TEST(MemoryBudgetTest, ThePartsAddUpToTheWholeForAnOddTotal) {
  const int64_t total = (64 << 20) + 3;
  auto budget = MemoryBudget::Divide(total);
  ASSERT_TRUE(budget.ok()) << budget.status();
  EXPECT_EQ(budget->write_buffer_bytes + budget->block_cache_bytes + budget->event_cache_bytes +
                budget->allocator_free_keep_bytes + budget->dedup_index_bytes,
            static_cast<size_t>(total));
  EXPECT_EQ(budget->write_buffer_bytes, static_cast<size_t>(total / 2));
}

TEST(MemoryBudgetTest, TooSmallOrNegativeIsInvalid) {
  for (int64_t total : {int64_t{0}, int64_t{-1}, MemoryBudget::kMinBytes - 1}) {
    auto budget = MemoryBudget::Divide(total);
    EXPECT_EQ(budget.status().code(), absl::StatusCode::kInvalidArgument) << total;
  }
  EXPECT_TRUE(MemoryBudget::Divide(MemoryBudget::kMinBytes).ok());
}

TEST(MemoryBudgetTest, TheSmallestBudgetOpensAStore) {
  auto budget = MemoryBudget::Divide(MemoryBudget::kMinBytes);
  ASSERT_TRUE(budget.ok()) << budget.status();
  RocksDbBrokerStore::Options options;
  options.write_buffer_bytes = budget->write_buffer_bytes;
  options.block_cache_bytes = budget->block_cache_bytes;
  auto store =
      RocksDbBrokerStore::Open(absl::StrCat(std::getenv("TEST_TMPDIR"), "/smallest"), options);
  EXPECT_TRUE(store.ok()) << store.status();
}

TEST(MemoryBudgetTest, MemtablesStayWithinTheirShareAndAreChargedToTheCache) {
  RocksDbBrokerStore::Options options;
  options.write_buffer_bytes = 4 << 20;
  options.block_cache_bytes = 1 << 20;
  auto store =
      RocksDbBrokerStore::Open(absl::StrCat(std::getenv("TEST_TMPDIR"), "/charged"), options);
  ASSERT_TRUE(store.ok()) << store.status();
  // 32 MiB of events, eight times the memtables' share.
  const std::string body(1024, 'x');
  int64_t most_memtables = 0;
  RocksDbBrokerStore::MemoryUsage last;
  for (uint64_t seq = 1; seq <= 32 * 1024; ++seq) {
    auto batch = (*store)->NewBatch();
    StoredEvent e;
    e.sequence = seq;
    e.wire = body;
    batch->PutEvent(e);
    batch->PutDedup("bench", absl::StrCat(seq), seq, absl::Now());
    batch->Enqueue(1, seq);
    ASSERT_TRUE((*store)->Write(*batch, /*sync=*/false).ok());
    if (seq % 1024 == 0) {
      last = (*store)->GetMemoryUsage();
      most_memtables = std::max(most_memtables, last.memtables);
    }
  }
  // What the configuration guarantees whatever the flush thread's pace
  // (a tighter 5 MiB failed on a busy machine at 5.15): the log's three
  // memtables, each a third of the share plus up to one arena block (an
  // eighth of it), and the other column families within the share (the
  // manager flushes the oldest past 7/8 of it). Far below the 32 MiB
  // written: the memtables do not grow with the log.
  const int64_t share = options.write_buffer_bytes;
  EXPECT_LE(most_memtables, 3 * (share / 3) * 9 / 8 + share) << most_memtables;
  EXPECT_GT(last.memtables, 0);
  // The cache holds the memtables' charges besides any blocks.
  EXPECT_GE(last.block_cache, last.memtables / 2);
}

}  // namespace
}  // namespace pettube::broker
