// What every BrokerStore must do, run against each implementation (RocksDB
// and in memory; the JetStream engine joins here): events and dedup, the
// queue under its ack floor, pending records and owed copies, dead
// letters, subscription records and their deletion.

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/broker/broker_store.h"
#include "services/broker/in_memory_broker_store.h"
#include "services/broker/rocksdb_broker_store.h"

namespace pettube::broker {
namespace {

class BrokerStoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = std::make_unique<InMemoryBrokerStore>();
      return;
    }
    auto store = RocksDbBrokerStore::Open(
        absl::StrCat(std::getenv("TEST_TMPDIR"), "/contract-", ++counter_), absl::Hours(24));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  template <typename F>
  void Write(F fill) {
    auto batch = store_->NewBatch();
    fill(*batch);
    ASSERT_TRUE(store_->Write(*batch, false).ok());
  }

  std::vector<uint64_t> Queue(uint32_t sub, uint64_t from = 0) {
    std::vector<uint64_t> out;
    EXPECT_TRUE(store_->ScanQueue(sub, from, 100, &out).ok());
    return out;
  }

  static StoredEvent Stored(uint64_t seq, absl::Time at) {
    StoredEvent e;
    e.sequence = seq;
    e.publish_time = at;
    e.wire = absl::StrCat("event-", seq);
    return e;
  }

  static inline int counter_ = 0;
  std::unique_ptr<BrokerStore> store_;
};

TEST_P(BrokerStoreContractTest, EventsAreReadBackScannedInOrderAndRemovedByRetention) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  Write([&](BrokerStore::Batch& b) {
    for (uint64_t seq = 1; seq <= 5; ++seq) b.PutEvent(Stored(seq, t0 + absl::Seconds(seq)));
    b.SetLastSequence(5);
  });
  EXPECT_EQ(*store_->LastSequence(), 5u);
  EXPECT_EQ(*store_->FirstSequence(), 1u);
  auto e3 = store_->GetEvent(3);
  ASSERT_TRUE(e3.ok() && e3->has_value());
  EXPECT_EQ((*e3)->wire, "event-3");
  EXPECT_EQ((*e3)->publish_time, t0 + absl::Seconds(3));
  EXPECT_FALSE(store_->GetEvent(9)->has_value());
  std::vector<std::optional<StoredEvent>> some;
  ASSERT_TRUE(store_->GetEvents({2, 9, 4}, &some).ok());
  ASSERT_EQ(some.size(), 3u);
  EXPECT_EQ(some[0]->wire, "event-2");
  EXPECT_FALSE(some[1].has_value());
  EXPECT_EQ(some[2]->wire, "event-4");
  std::vector<uint64_t> scanned;
  ASSERT_TRUE(store_
                  ->ScanEvents(2,
                               [&](const StoredEvent& e) {
                                 scanned.push_back(e.sequence);
                                 return e.sequence < 4;
                               })
                  .ok());
  EXPECT_EQ(scanned, (std::vector<uint64_t>{2, 3, 4}));

  Write([](BrokerStore::Batch& b) { b.DeleteEventsBefore(4); });
  EXPECT_EQ(*store_->FirstSequence(), 4u);
  EXPECT_FALSE(store_->GetEvent(3)->has_value());
  Write([](BrokerStore::Batch& b) { b.DeleteEventsBefore(6); });
  EXPECT_EQ(*store_->FirstSequence(), 0u);
  EXPECT_EQ(*store_->LastSequence(), 5u);  // the log's end stays
}

TEST_P(BrokerStoreContractTest, DedupAnswersOnlyWithinTheWindow) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  Write([&](BrokerStore::Batch& b) { b.PutDedup("//src", "id-1", 7, t0); });
  EXPECT_EQ(*store_->LookupDedup("//src", "id-1", t0 - absl::Hours(1)), 7u);
  EXPECT_EQ(*store_->LookupDedup("//src", "id-1", t0), 7u);
  EXPECT_FALSE(store_->LookupDedup("//src", "id-1", t0 + absl::Seconds(1))->has_value());
  EXPECT_FALSE(store_->LookupDedup("//src", "id-2", t0 - absl::Hours(1))->has_value());
  EXPECT_FALSE(store_->LookupDedup("//other", "id-1", t0 - absl::Hours(1))->has_value());
}

TEST_P(BrokerStoreContractTest, BatchedDedupLookupsAnswerLikeSingleOnes) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  Write([&](BrokerStore::Batch& b) {
    b.PutDedup("//src", "id-1", 7, t0);
    b.PutDedup("//src", "id-3", 9, t0 - absl::Hours(2));
  });
  std::vector<std::optional<uint64_t>> found;
  ASSERT_TRUE(store_
                  ->LookupDedups({{"//src", "id-1"},
                                  {"//src", "id-2"},
                                  {"//src", "id-3"},
                                  {"//other", "id-1"},
                                  {"//src", "id-1"}},
                                 t0 - absl::Hours(1), &found)
                  .ok());
  ASSERT_EQ(found.size(), 5u);
  EXPECT_EQ(found[0], std::optional<uint64_t>(7));
  EXPECT_FALSE(found[1].has_value());
  EXPECT_FALSE(found[2].has_value());  // outside the window
  EXPECT_FALSE(found[3].has_value());
  EXPECT_EQ(found[4], std::optional<uint64_t>(7));
  ASSERT_TRUE(store_->LookupDedups({}, t0, &found).ok());
  EXPECT_TRUE(found.empty());
}

TEST_P(BrokerStoreContractTest, TheAckFloorHidesWhatLiesBelowItAndARedriveLowersIt) {
  Write([](BrokerStore::Batch& b) {
    for (uint64_t seq = 1; seq <= 10; ++seq) {
      b.Enqueue(1, seq);
      b.Enqueue(2, seq);
    }
  });
  Write([](BrokerStore::Batch& b) {
    b.SetAckFloor(1, 6);
    b.Dequeue(1, 8);  // acked above the floor
  });
  EXPECT_EQ(store_->AckFloor(1), 6u);
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{6, 7, 9, 10}));
  EXPECT_EQ(Queue(1, 9), (std::vector<uint64_t>{9, 10}));
  EXPECT_EQ(*store_->CountQueue(1), 4);
  EXPECT_EQ(store_->AckFloor(2), 0u);
  EXPECT_EQ(*store_->CountQueue(2), 10);
  // A redrive re-queues 2 under the floor, drops the settled entries the
  // lowered floor would uncover, and lowers the floor in one batch.
  Write([](BrokerStore::Batch& b) {
    b.DequeueRange(1, 2, 6);
    b.Enqueue(1, 2);
    b.SetAckFloor(1, 2);
  });
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{2, 6, 7, 9, 10}));
  // A seek clears queue, pending records and floor.
  Write([](BrokerStore::Batch& b) {
    b.PutPending(1, 7, storage::PendingRecord());
    b.ClearQueue(1);
    b.Enqueue(1, 3);
  });
  EXPECT_EQ(store_->AckFloor(1), 0u);
  EXPECT_EQ(Queue(1), (std::vector<uint64_t>{3}));
  int pending = 0;
  ASSERT_TRUE(
      store_->LoadPending(1, [&](uint64_t, const storage::PendingRecord&) { ++pending; }).ok());
  EXPECT_EQ(pending, 0);
  EXPECT_EQ(*store_->CountQueue(2), 10);  // other subscriptions untouched
}

TEST_P(BrokerStoreContractTest, PendingRecordsKeepAttemptsAndTheOwedCopy) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  storage::PendingRecord attempts;
  attempts.set_attempts(3);
  attempts.set_last_error("boom");
  storage::PendingRecord owed;
  owed.set_event("the-event");
  owed.mutable_publish_time()->set_seconds(absl::ToUnixSeconds(t0));
  Write([&](BrokerStore::Batch& b) {
    b.PutPending(1, 4, attempts);
    b.PutPending(1, 5, owed);
    b.PutPending(2, 4, attempts);
  });
  std::vector<std::pair<uint64_t, int>> loaded;
  ASSERT_TRUE(store_
                  ->LoadPending(1,
                                [&](uint64_t seq, const storage::PendingRecord& r) {
                                  loaded.emplace_back(seq, r.attempts());
                                })
                  .ok());
  EXPECT_EQ(loaded, (std::vector<std::pair<uint64_t, int>>{{4, 3}, {5, 0}}));
  EXPECT_FALSE(store_->GetOwedCopy(1, 4)->has_value());  // no event in it
  auto copy = store_->GetOwedCopy(1, 5);
  ASSERT_TRUE(copy.ok() && copy->has_value());
  EXPECT_EQ((*copy)->wire, "the-event");
  EXPECT_EQ((*copy)->sequence, 5u);
  EXPECT_EQ((*copy)->publish_time, t0);
  Write([](BrokerStore::Batch& b) { b.DeletePending(1, 5); });
  EXPECT_FALSE(store_->GetOwedCopy(1, 5)->has_value());
}

TEST_P(BrokerStoreContractTest, DeletingASubscriptionRemovesEverythingOfItsOnly) {
  storage::SubscriptionRecord a, b;
  a.set_internal_id(1);
  a.mutable_subscription()->set_name("subscriptions/a");
  b.set_internal_id(2);
  b.mutable_subscription()->set_name("subscriptions/b");
  Write([&](BrokerStore::Batch& batch) {
    batch.PutSubscription(a);
    batch.PutSubscription(b);
    batch.SetNextSubscriptionId(3);
    for (uint32_t sub : {1u, 2u}) {
      batch.Enqueue(sub, 1);
      batch.PutPending(sub, 1, storage::PendingRecord());
      for (uint64_t seq : {3u, 1u, 2u}) {
        v1::DeadLetter d;
        d.set_sequence(seq);
        batch.PutDeadLetter(sub, d);
      }
    }
  });
  EXPECT_EQ(*store_->NextSubscriptionId(), 3u);
  EXPECT_EQ(store_->LoadSubscriptions()->size(), 2u);
  std::vector<v1::DeadLetter> letters;
  ASSERT_TRUE(store_->ScanDeadLetters(1, 2, 10, &letters).ok());
  ASSERT_EQ(letters.size(), 2u);  // from 2, oldest first
  EXPECT_EQ(letters[0].sequence(), 2u);
  EXPECT_EQ(letters[1].sequence(), 3u);
  EXPECT_EQ(*store_->CountDeadLetters(1), 3);
  Write([](BrokerStore::Batch& batch) { batch.DeleteDeadLetter(1, 2); });
  EXPECT_EQ(*store_->CountDeadLetters(1), 2);

  Write([](BrokerStore::Batch& batch) { batch.DeleteSubscription("subscriptions/a", 1); });
  auto left = store_->LoadSubscriptions();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].subscription().name(), "subscriptions/b");
  EXPECT_TRUE(Queue(1).empty());
  EXPECT_EQ(*store_->CountDeadLetters(1), 0);
  int pending = 0;
  ASSERT_TRUE(
      store_->LoadPending(1, [&](uint64_t, const storage::PendingRecord&) { ++pending; }).ok());
  EXPECT_EQ(pending, 0);
  EXPECT_EQ(Queue(2), (std::vector<uint64_t>{1}));
  EXPECT_EQ(*store_->CountDeadLetters(2), 3);
}

INSTANTIATE_TEST_SUITE_P(Stores, BrokerStoreContractTest, ::testing::Values("rocksdb", "memory"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace pettube::broker
