// Both MediaStore implementations against the same contract: versions,
// applied markers, index membership and order. RocksDB also across a
// reopen and through a checkpoint.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/time/proto_time.h"
#include "services/media-catalog/in_memory_media_store.h"
#include "services/media-catalog/rocksdb_media_store.h"

namespace pettube::catalog {
namespace {

StoredMedia Uploaded(const std::string& id, const std::string& owner, int minute,
                     uint64_t version = 1) {
  StoredMedia m;
  m.set_media_id(id);
  m.set_owner(owner);
  m.set_uploaded(true);
  m.set_version(version);
  *m.mutable_create_time() = time::ToProto(absl::FromUnixSeconds(1700000000 + 60 * minute));
  return m;
}

// Writes alice's records m0 .. m{count-1}, then compacts them into a table
// file (out of the memtable).
absl::Status WriteCompacted(RocksDbMediaStore& store, int count) {
  for (int i = 0; i < count; ++i) {
    if (auto s = store.Write(Uploaded(absl::StrCat("m", i), "alice", i), 0, ""); !s.ok()) return s;
  }
  return store.CompactAll();
}

std::vector<std::string> Ids(const ScanResult& r) {
  std::vector<std::string> ids;
  for (const auto& m : r.media) ids.push_back(m.media_id());
  return ids;
}

// A ScanRequest by position (C++17 has no designated initializers).
ScanRequest Request(MediaIndex index, const std::string& owner = "", const std::string& after = "",
                    int limit = ScanRequest().limit) {
  ScanRequest request;
  request.index = index;
  request.owner = owner;
  request.after = after;
  request.limit = limit;
  return request;
}

enum class StoreKind { kInMemory, kRocksDb, kRocksDbWithRowCache, kRocksDbWithRecordCache };

class MediaStoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    dir_ = testing::NewTempDir("store");
    if (IsRocksDb()) {
      Reopen();
    } else {
      store_ = std::make_unique<InMemoryMediaStore>();
    }
  }
  bool IsRocksDb() const { return GetParam() != StoreKind::kInMemory; }
  void Reopen() {
    store_.reset();
    RocksDbMediaStore::Options unsynced;
    unsynced.sync = false;
    if (GetParam() == StoreKind::kRocksDbWithRowCache) unsynced.row_cache_bytes = 1 << 20;
    if (GetParam() == StoreKind::kRocksDbWithRecordCache) unsynced.record_cache_bytes = 1 << 20;
    auto opened = RocksDbMediaStore::Open(dir_ + "/db", unsynced);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
  }

  std::string dir_;
  std::unique_ptr<MediaStore> store_;
};

TEST_P(MediaStoreTest, WriteChecksTheVersionAndRecordsTheEventOnce) {
  EXPECT_TRUE(absl::IsNotFound(store_->Get("m1").status()));
  ASSERT_TRUE(store_->Write(Uploaded("m1", "alice", 1), 0, "src\ne1").ok());
  EXPECT_TRUE(*store_->IsApplied("src\ne1"));
  EXPECT_FALSE(*store_->IsApplied("src\ne2"));
  // The same event again changes nothing.
  EXPECT_TRUE(absl::IsAlreadyExists(store_->Write(Uploaded("m1", "alice", 1, 2), 1, "src\ne1")));
  // A stale expected version is ABORTED.
  EXPECT_TRUE(absl::IsAborted(store_->Write(Uploaded("m1", "alice", 1), 0, "src\ne2")));
  EXPECT_TRUE(absl::IsAborted(store_->Write(Uploaded("m1", "alice", 1, 3), 2, "")));
  // A version that is not expected + 1 is a caller bug: INVALID_ARGUMENT.
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Write(Uploaded("m1", "alice", 1, 5), 1, "")));
  ASSERT_TRUE(store_->Write(Uploaded("m1", "alice", 1, 2), 1, "src\ne2").ok());
  EXPECT_EQ(store_->Get("m1")->version(), 2u);
  EXPECT_TRUE(store_->MarkApplied("m1", "src\ne3").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(store_->MarkApplied("m1", "src\ne3")));
}

TEST_P(MediaStoreTest, AJustWrittenRecordIsReadFromMemoryAndAnAbsentOneNeverIs) {
  StoredMedia m = Uploaded("m1", "alice", 1);
  m.set_title("cat");
  ASSERT_TRUE(store_->Write(m, 0, "").ok());
  StoredMedia read;
  auto in_memory = store_->ReadFromMemory("m1", &read);
  ASSERT_TRUE(in_memory.ok()) << in_memory.status();
  ASSERT_TRUE(*in_memory);  // in the memtable
  EXPECT_EQ(read.title(), "cat");
  // Absent: NOT_FOUND, or (when telling needs a table's block) "needs I/O".
  auto absent = store_->ReadFromMemory("m2", &read);
  EXPECT_TRUE(absl::IsNotFound(absent.status()) || (absent.ok() && !*absent)) << absent.status();
}

TEST_P(MediaStoreTest, OwnerIndexIsNewestFirstAndPagesResumeAfterTheCursor) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->Write(Uploaded(absl::StrCat("m", i), "alice", i), 0, "").ok());
  }
  ASSERT_TRUE(store_->Write(Uploaded("b0", "bob", 10), 0, "").ok());
  auto first = store_->Scan(Request(MediaIndex::kOwner, "alice", "", 2));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Ids(*first), (std::vector<std::string>{"m4", "m3"}));
  EXPECT_FALSE(first->end);
  // A newer item arriving between pages lands before the cursor.
  ASSERT_TRUE(store_->Write(Uploaded("m9", "alice", 9), 0, "").ok());
  auto second = store_->Scan(Request(MediaIndex::kOwner, "alice", first->last_key, 10));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Ids(*second), (std::vector<std::string>{"m2", "m1", "m0"}));
  EXPECT_TRUE(second->end);
  // A cursor from another owner's range is refused.
  EXPECT_TRUE(absl::IsInvalidArgument(
      store_->Scan(Request(MediaIndex::kOwner, "bob", first->last_key)).status()));
}

TEST_P(MediaStoreTest, PublicIndexFollowsVisibilityAndTombstonesLeaveEveryIndex) {
  StoredMedia m = Uploaded("m1", "alice", 1);
  m.set_visibility(v1::PUBLIC);
  ASSERT_TRUE(store_->Write(m, 0, "").ok());
  EXPECT_EQ(Ids(*store_->Scan(Request(MediaIndex::kPublic))), (std::vector<std::string>{"m1"}));
  m.set_version(2);
  m.set_visibility(v1::UNLISTED);
  ASSERT_TRUE(store_->Write(m, 1, "").ok());
  EXPECT_TRUE(store_->Scan(Request(MediaIndex::kPublic))->media.empty());
  EXPECT_EQ(Ids(*store_->Scan(Request(MediaIndex::kAll))), (std::vector<std::string>{"m1"}));
  StoredMedia tombstone;
  tombstone.set_media_id("m1");
  tombstone.set_owner("alice");
  tombstone.set_deleted(true);
  tombstone.set_version(3);
  ASSERT_TRUE(store_->Write(tombstone, 2, "").ok());
  EXPECT_TRUE(store_->Scan(Request(MediaIndex::kOwner, "alice"))->media.empty());
  EXPECT_TRUE(store_->Scan(Request(MediaIndex::kAll))->media.empty());
  EXPECT_TRUE(store_->Get("m1")->deleted());
}

TEST_P(MediaStoreTest, FilterAndScanBudgetBoundAPage) {
  for (int i = 0; i < 6; ++i) {
    StoredMedia m = Uploaded(absl::StrCat("m", i), "alice", i);
    m.set_ready(i % 2 == 0);
    ASSERT_TRUE(store_->Write(m, 0, "").ok());
  }
  ScanRequest req = Request(MediaIndex::kOwner, "alice", "", 10);
  req.max_scan = 3;
  req.filter = [](const StoredMedia& m) { return m.ready(); };
  auto page = store_->Scan(req);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Ids(*page), (std::vector<std::string>{"m4"}));  // m5 m4 m3 looked at
  EXPECT_FALSE(page->end);
  req.after = page->last_key;
  page = store_->Scan(req);
  EXPECT_EQ(Ids(*page), (std::vector<std::string>{"m2", "m0"}));
  EXPECT_TRUE(page->end);
}

TEST_P(MediaStoreTest, AnOutboxEventCommitsWithItsRecordAndLeavesWhenRemoved) {
  io::cloudevents::v1::CloudEvent event;
  event.set_id("e-1");
  event.set_type("pettube.media.updated");
  ASSERT_TRUE(store_->Write(Uploaded("m1", "alice", 1), 0, "src\ne-1", &event).ok());
  // A write that fails its version check stores no event.
  io::cloudevents::v1::CloudEvent refused = event;
  refused.set_id("e-2");
  EXPECT_TRUE(absl::IsAborted(store_->Write(Uploaded("m1", "alice", 1), 0, "src\ne-2", &refused)));
  auto outbox = store_->Outbox();
  ASSERT_TRUE(outbox.ok()) << outbox.status();
  ASSERT_EQ(outbox->size(), 1u);
  EXPECT_EQ((*outbox)[0].id(), "e-1");
  EXPECT_EQ((*outbox)[0].type(), "pettube.media.updated");
  if (IsRocksDb()) {
    Reopen();  // the outbox is durable
    ASSERT_EQ(store_->Outbox()->size(), 1u);
  }
  ASSERT_TRUE(store_->RemoveFromOutbox("e-1").ok());
  EXPECT_TRUE(store_->Outbox()->empty());
  EXPECT_TRUE(store_->RemoveFromOutbox("never-there").ok());
}

INSTANTIATE_TEST_SUITE_P(Stores, MediaStoreTest,
                         ::testing::Values(StoreKind::kInMemory, StoreKind::kRocksDb,
                                           StoreKind::kRocksDbWithRowCache,
                                           StoreKind::kRocksDbWithRecordCache),
                         [](const auto& info) {
                           switch (info.param) {
                             case StoreKind::kInMemory:
                               return "InMemory";
                             case StoreKind::kRocksDb:
                               return "RocksDb";
                             case StoreKind::kRocksDbWithRowCache:
                               return "RocksDbWithRowCache";
                             case StoreKind::kRocksDbWithRecordCache:
                               return "RocksDbWithRecordCache";
                           }
                           return "Unknown";
                         });

// The row cache answers from memory what a table file holds, the record
// cache what reads and writes left in it; a write after the warm-up (in the
// memtable, then compacted into a new file) must still be what a read
// returns.
class CacheTest : public ::testing::TestWithParam<bool> {
 protected:
  // The row cache, or (true) the record cache.
  RocksDbMediaStore::Options WithCache() const {
    RocksDbMediaStore::Options options;
    options.sync = false;
    if (GetParam()) {
      options.record_cache_bytes = 1 << 20;
    } else {
      options.row_cache_bytes = 1 << 20;
    }
    return options;
  }
};

INSTANTIATE_TEST_SUITE_P(Caches, CacheTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "RecordCache" : "RowCache"; });

TEST_P(CacheTest, NeverHidesALaterWrite) {
  const std::string dir = testing::NewTempDir("cache");
  auto store = RocksDbMediaStore::Open(dir + "/db", WithCache());
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(WriteCompacted(**store, 20).ok());
  auto warmed = (*store)->WarmCaches();
  ASSERT_TRUE(warmed.ok()) << warmed.status();
  EXPECT_EQ(*warmed, 20);

  StoredMedia v2 = Uploaded("m7", "alice", 7, /*version=*/2);
  v2.set_title("second");
  ASSERT_TRUE((*store)->Write(v2, 1, "").ok());
  auto read = (*store)->Get("m7");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->version(), 2u);
  EXPECT_EQ(read->title(), "second");
  ASSERT_TRUE((*store)->CompactAll().ok());
  read = (*store)->Get("m7");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->title(), "second");
  EXPECT_EQ((*store)->Get("m8")->version(), 1u);
}

// Each write is what the next read returns, with the record cache between
// them (a read racing a write is record_cache_test's
// AReadThatBeganBeforeAWriteNeverFills).
TEST(RocksDbMediaStoreTest, TheRecordCacheFollowsEveryWrite) {
  const std::string dir = testing::NewTempDir("record_cache");
  RocksDbMediaStore::Options options;
  options.sync = false;
  options.record_cache_bytes = 1 << 20;
  auto store = RocksDbMediaStore::Open(dir + "/db", options);
  ASSERT_TRUE(store.ok()) << store.status();
  for (uint64_t version = 1; version <= 50; ++version) {
    StoredMedia next = Uploaded("m1", "alice", 1, version);
    next.set_title(absl::StrCat("title ", version));
    ASSERT_TRUE((*store)->Write(next, version - 1, "").ok());
    auto read = (*store)->Get("m1");  // from the cache after the first
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->version(), version);
    EXPECT_EQ(read->title(), absl::StrCat("title ", version));
  }
  // A stale etag still meets the current version, not a cached older one.
  EXPECT_TRUE(absl::IsAborted((*store)->Write(Uploaded("m1", "alice", 1, 49), 48, "")));
}

TEST(RocksDbMediaStoreTest, OnRecordWrittenFollowsEveryWriteThatReachesItsCommit) {
  const std::string dir = testing::NewTempDir("on_record_written");
  std::vector<std::string> written;
  RocksDbMediaStore::Options options;
  options.sync = false;
  options.record_cache_bytes = 1 << 20;
  // Called once the write is visible: a read from the callback sees it.
  RocksDbMediaStore* opened = nullptr;
  options.on_record_written = [&](absl::string_view id) {
    written.emplace_back(id);
    auto read = opened->Get(id);
    EXPECT_TRUE(read.ok()) << read.status();
  };
  auto store = RocksDbMediaStore::Open(dir + "/db", options);
  ASSERT_TRUE(store.ok()) << store.status();
  opened = store->get();
  ASSERT_TRUE((*store)->Write(Uploaded("m1", "alice", 1), 0, "src\ne1").ok());
  ASSERT_TRUE((*store)->Write(Uploaded("m2", "bob", 2), 0, "").ok());
  ASSERT_TRUE((*store)->Write(Uploaded("m1", "alice", 1, 2), 1, "").ok());
  EXPECT_EQ(written, (std::vector<std::string>{"m1", "m2", "m1"}));
  // Writes refused before their commit change nothing, and say nothing.
  EXPECT_TRUE(absl::IsAlreadyExists((*store)->Write(Uploaded("m1", "alice", 1, 3), 2, "src\ne1")));
  EXPECT_TRUE(absl::IsAborted((*store)->Write(Uploaded("m1", "alice", 1, 2), 1, "")));
  EXPECT_EQ(written.size(), 3u);
}

TEST(RocksDbMediaStoreTest, ForEachRecordIdVisitsEachRecordOnceAndStopsAtAnError) {
  const std::string dir = testing::NewTempDir("for_each");
  RocksDbMediaStore::Options options;
  options.sync = false;
  auto store = RocksDbMediaStore::Open(dir + "/db", options);
  ASSERT_TRUE(store.ok()) << store.status();
  // More than one listing chunk (1,024), written while visiting too.
  constexpr int kRecords = 2500;
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_TRUE((*store)->Write(Uploaded(absl::StrCat("m", i), "alice", i + 1), 0, "").ok());
  }
  std::set<std::string> seen;
  absl::Status all = (*store)->ForEachRecordId([&](absl::string_view id) {
    EXPECT_TRUE(seen.emplace(id).second) << "visited twice: " << id;
    auto read = (*store)->Get(id);
    if (!read.ok()) return read.status();
    StoredMedia next = *read;
    next.set_version(read->version() + 1);
    return (*store)->Write(next, read->version(), "");
  });
  ASSERT_TRUE(all.ok()) << all;
  EXPECT_EQ(seen.size(), static_cast<size_t>(kRecords));
  EXPECT_EQ((*store)->Get("m7")->version(), 2u);
  int visits = 0;
  absl::Status stopped = (*store)->ForEachRecordId([&](absl::string_view) {
    return ++visits == 3 ? absl::DataLossError("stop here") : absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsDataLoss(stopped)) << stopped;
  EXPECT_EQ(visits, 3);
}

// After a reopen nothing of a table file is cached: a memory-only read says
// it needs I/O; once a read has brought the block in (or the row cache or
// the record cache is warmed), the memory-only read answers.
TEST(RocksDbMediaStoreTest, AReadFromMemoryNeedsTheBlockOrTheRowCached) {
  const std::string dir = testing::NewTempDir("memory_only");
  RocksDbMediaStore::Options options;
  options.sync = false;
  {
    auto store = RocksDbMediaStore::Open(dir + "/db", options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(WriteCompacted(**store, 20).ok());
  }
  StoredMedia read;
  {
    auto store = RocksDbMediaStore::Open(dir + "/db", options);
    ASSERT_TRUE(store.ok()) << store.status();
    auto cold = (*store)->ReadFromMemory("m3", &read);
    ASSERT_TRUE(cold.ok()) << cold.status();
    EXPECT_FALSE(*cold);
    ASSERT_TRUE((*store)->Read("m3", &read).ok());
    auto warm = (*store)->ReadFromMemory("m3", &read);
    ASSERT_TRUE(warm.ok()) << warm.status();
    EXPECT_TRUE(*warm);
    EXPECT_EQ(read.media_id(), "m3");
  }
  options.block_cache_bytes = 1;  // nothing stays in the block cache
  for (const bool record_cache : {false, true}) {
    options.row_cache_bytes = record_cache ? 0 : 1 << 20;
    options.record_cache_bytes = record_cache ? 1 << 20 : 0;
    auto store = RocksDbMediaStore::Open(dir + "/db", options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->WarmCaches().ok());
    auto cached = (*store)->ReadFromMemory("m17", &read);
    ASSERT_TRUE(cached.ok()) << cached.status();
    EXPECT_TRUE(*cached) << (record_cache ? "record cache" : "row cache");
    EXPECT_EQ(read.media_id(), "m17");
  }
}

TEST(RocksDbMediaStoreTest, WarmingWithNeitherCacheIsAFailedPrecondition) {
  const std::string dir = testing::NewTempDir("no_row_cache");
  auto store = RocksDbMediaStore::Open(dir + "/db", {});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE(absl::IsFailedPrecondition((*store)->WarmCaches().status()));
}

TEST(RocksDbMediaStoreTest, RecordsSecretAndAppliedIdsSurviveReopenAndCheckpoint) {
  const std::string dir = testing::NewTempDir("rocks");
  std::string secret;
  {
    auto store = RocksDbMediaStore::Open(dir + "/db", {});
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_TRUE(*(*store)->IsEmpty());
    ASSERT_TRUE((*store)->Write(Uploaded("m1", "alice", 1), 0, "src\ne1").ok());
    secret = *(*store)->Secret();
    EXPECT_EQ(secret.size(), 32u);
    ASSERT_TRUE((*store)->Checkpoint(dir + "/backup").ok());
    EXPECT_FALSE((*store)->Checkpoint(dir + "/backup").ok());  // exists
    // A write after the checkpoint is not in it.
    ASSERT_TRUE((*store)->Write(Uploaded("m2", "alice", 2), 0, "src\ne2").ok());
  }
  {
    auto store = RocksDbMediaStore::Open(dir + "/db", {});
    ASSERT_TRUE(store.ok());
    EXPECT_EQ(*(*store)->Secret(), secret);
    EXPECT_TRUE(*(*store)->IsApplied("src\ne2"));
    EXPECT_FALSE(*(*store)->IsEmpty());
  }
  auto restored = RocksDbMediaStore::Open(dir + "/backup", {});
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE((*restored)->Get("m1").ok());
  EXPECT_TRUE(absl::IsNotFound((*restored)->Get("m2").status()));
  EXPECT_TRUE(*(*restored)->IsApplied("src\ne1"));
  EXPECT_EQ(*(*restored)->Secret(), secret);
}

TEST(RocksDbMediaStoreTest, CompactAllKeepsEveryRecordAndIndexEntry) {
  const std::string dir = testing::NewTempDir("compact");
  RocksDbMediaStore::Options unsynced;
  unsynced.sync = false;
  auto store = RocksDbMediaStore::Open(dir + "/db", unsynced);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(WriteCompacted(**store, 50).ok());
  EXPECT_TRUE((*store)->Get("m49").ok());
  ScanRequest scan;
  scan.owner = "alice";
  scan.limit = 100;
  auto page = (*store)->Scan(scan);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->media.size(), 50u);
}

TEST(RocksDbMediaStoreTest, ASecondProcessOnTheSameDirectoryIsUnavailable) {
  const std::string dir = testing::NewTempDir("locked");
  auto first = RocksDbMediaStore::Open(dir, {});
  ASSERT_TRUE(first.ok());
  auto second = RocksDbMediaStore::Open(dir, {});
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
}

}  // namespace
}  // namespace pettube::catalog
