#include "services/broker/rocksdb_broker_store.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "rocksdb/db.h"

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

// Dedup entries are never written on the publish path: a reopened store
// finds them from the run files, and those of the events after them from
// the log. Only durable writes reach run files.
TEST_F(RocksDbBrokerStoreTest, DedupEntriesSurviveReopeningFromRunsAndFromTheLog) {
  const absl::Time now = absl::Now();
  const uint64_t kEvents = (1 << 16) + 100;  // one full segment and some
  for (uint64_t from = 1; from <= kEvents; from += 1000) {
    auto batch = store_->NewBatch();
    for (uint64_t seq = from; seq < from + 1000 && seq <= kEvents; ++seq) {
      CloudEvent e;
      e.set_id(absl::StrCat("id-", seq));
      e.set_source("//test");
      StoredEvent stored;
      stored.sequence = seq;
      stored.publish_time = now;
      stored.wire = e.SerializeAsString();
      batch->PutEvent(stored);
      batch->PutDedup(e.source(), e.id(), seq, now);
    }
    ASSERT_TRUE(store_->Write(*batch, /*sync=*/true).ok());
  }
  auto expect_all = [&] {
    for (uint64_t seq : {uint64_t{1}, uint64_t{777}, uint64_t{1} << 16, kEvents}) {
      auto found = store_->LookupDedup("//test", absl::StrCat("id-", seq), now);
      ASSERT_TRUE(found.ok()) << found.status();
      EXPECT_EQ(*found, seq);
    }
    auto missing = store_->LookupDedup("//test", "id-0", now);
    ASSERT_TRUE(missing.ok());
    EXPECT_EQ(*missing, std::nullopt);
    // Outside the window: not a duplicate.
    auto old = store_->LookupDedup("//test", "id-1", now + absl::Seconds(1));
    ASSERT_TRUE(old.ok());
    EXPECT_EQ(*old, std::nullopt);
  };
  expect_all();
  Open();
  expect_all();
  Open();  // again, once the replayed entries were written to runs too
  expect_all();
}

// A data directory from a broker before the DedupIndex: its entries are in
// the `dedup` column family, and are still found (until they expire).
TEST_F(RocksDbBrokerStoreTest, DedupEntriesAnOlderBrokerWroteAreStillFound) {
  store_.reset();
  const absl::Time now = absl::Now();
  {
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir_, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const auto& name : names) cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir_, cfs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::ColumnFamilyHandle* dedup = nullptr;
    for (auto* h : handles) {
      if (h->GetName() == "dedup") dedup = h;
    }
    ASSERT_NE(dedup, nullptr);
    // As the older broker wrote it: source NUL id -> sequence, publish time.
    std::string value(16, '\0');
    absl::little_endian::Store64(value.data(), 42);
    absl::little_endian::Store64(value.data() + 8, static_cast<uint64_t>(absl::ToUnixMicros(now)));
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), dedup, std::string("//old\0id-1", 10), value).ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    db->Close();
  }
  Open();
  // (Times are kept in microseconds.)
  auto found = store_->LookupDedup("//old", "id-1", now - absl::Seconds(1));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, 42u);
  auto other = store_->LookupDedup("//old", "id-2", now - absl::Seconds(1));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, std::nullopt);
  auto expired = store_->LookupDedup("//old", "id-1", now + absl::Seconds(1));
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(*expired, std::nullopt);
}

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
