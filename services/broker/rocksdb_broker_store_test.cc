#include "services/broker/rocksdb_broker_store.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace pettube::broker {
namespace {

class RocksDbBrokerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/store-", ++counter_);
    Open();
  }

  void Open() {
    store_.reset();
    auto store = RocksDbBrokerStore::Open(dir_, absl::Hours(24));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  template <typename Fn>
  void Write(Fn fill) {
    auto batch = store_->NewBatch();
    fill(*batch);
    ASSERT_TRUE(store_->Write(*batch, /*sync=*/false).ok());
  }

  std::vector<uint64_t> Queue(uint32_t sub, uint64_t from = 0) {
    std::vector<uint64_t> out;
    EXPECT_TRUE(store_->ScanQueue(sub, from, 100, &out).ok());
    return out;
  }

  int64_t Count(uint32_t sub) {
    auto n = store_->CountQueue(sub);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.value_or(-1);
  }

  static int counter_;
  std::string dir_;
  std::unique_ptr<RocksDbBrokerStore> store_;
};
int RocksDbBrokerStoreTest::counter_ = 0;

TEST_F(RocksDbBrokerStoreTest, EntriesBelowTheAckFloorAreNotOwedAndItSurvivesReopening) {
  Write([](BrokerStore::Batch& b) {
    for (uint64_t seq = 1; seq <= 10; ++seq) b.Enqueue(1, seq);
    for (uint64_t seq = 1; seq <= 5; ++seq) b.Enqueue(2, seq);
  });
  Write([](BrokerStore::Batch& b) {
    b.SetAckFloor(1, 6);
    b.Dequeue(1, 8);  // acked above the floor
  });
  EXPECT_EQ(store_->AckFloor(1), 6u);
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{6, 7, 9, 10}));
  EXPECT_EQ(Queue(1, 3), (std::vector<uint64_t>{6, 7, 9, 10}));
  EXPECT_EQ(Count(1), 4);
  EXPECT_EQ(store_->AckFloor(2), 0u);  // other subscriptions untouched
  EXPECT_EQ(Count(2), 5);
  Open();
  EXPECT_EQ(store_->AckFloor(1), 6u);
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{6, 7, 9, 10}));
  EXPECT_EQ(Count(2), 5);
}

TEST_F(RocksDbBrokerStoreTest, CompactionDropsEntriesBelowTheFloorAndKeepsTheRest) {
  Write([](BrokerStore::Batch& b) {
    for (uint64_t seq = 1; seq <= 10; ++seq) b.Enqueue(1, seq);
    for (uint64_t seq = 1; seq <= 10; ++seq) b.Enqueue(2, seq);
  });
  Write([](BrokerStore::Batch& b) { b.SetAckFloor(1, 8); });
  EXPECT_EQ(*store_->CountStoredQueueEntries(1), 10);  // settled, still stored
  ASSERT_TRUE(store_->CompactQueue().ok());
  EXPECT_EQ(*store_->CountStoredQueueEntries(1), 3);  // 8, 9, 10
  EXPECT_EQ(*store_->CountStoredQueueEntries(2), 10);
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{8, 9, 10}));
  // The floors are loaded before anything can compact after a restart.
  Write([](BrokerStore::Batch& b) { b.SetAckFloor(2, 5); });
  Open();
  ASSERT_TRUE(store_->CompactQueue().ok());
  EXPECT_EQ(*store_->CountStoredQueueEntries(2), 6);
  EXPECT_EQ(*store_->CountStoredQueueEntries(1), 3);
}

TEST_F(RocksDbBrokerStoreTest, LoweringTheFloorBringsBackWhatIsRequeuedWithIt) {
  Write([](BrokerStore::Batch& b) {
    for (uint64_t seq = 1; seq <= 5; ++seq) b.Enqueue(1, seq);
    b.SetAckFloor(1, 4);
  });
  // A redrive of 2: the settled entries it uncovers (3) are removed in the
  // same batch, before it is re-queued.
  Write([](BrokerStore::Batch& b) {
    b.DequeueRange(1, 2, 4);
    b.Enqueue(1, 2);
    b.SetAckFloor(1, 2);
  });
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{2, 4, 5}));
  EXPECT_EQ(store_->AckFloor(1), 2u);
}

TEST_F(RocksDbBrokerStoreTest, ClearingTheQueueDropsTheFloor) {
  Write([](BrokerStore::Batch& b) {
    for (uint64_t seq = 1; seq <= 5; ++seq) b.Enqueue(1, seq);
    b.SetAckFloor(1, 5);
  });
  Write([](BrokerStore::Batch& b) {
    b.ClearQueue(1);
    b.Enqueue(1, 2);  // a seek's backfill
  });
  EXPECT_EQ(store_->AckFloor(1), 0u);
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{2}));
  Open();
  EXPECT_EQ(store_->AckFloor(1), 0u);
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{2}));
}

}  // namespace
}  // namespace pettube::broker
