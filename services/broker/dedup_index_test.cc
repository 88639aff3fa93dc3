#include "services/broker/dedup_index.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace pettube::broker {
namespace {

// A key as the store builds it: source, a NUL, id.
std::string Key(uint64_t n) { return absl::StrCat(absl::string_view("src\0k", 5), n); }

class DedupIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dedup_index_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(absl::StrCat("rm -rf '", dir_, "'").c_str()); }

  DedupIndex::Options Opts(size_t segment_entries = 4) {
    DedupIndex::Options o;
    o.dir = dir_ + "/runs";
    o.window = absl::Hours(1);
    o.segment_entries = segment_entries;
    return o;
  }
  static std::optional<uint64_t> Find(DedupIndex& index, const std::string& key,
                                      absl::Time not_before = absl::InfinitePast()) {
    std::vector<std::optional<uint64_t>> out;
    EXPECT_TRUE(index.Lookup({key}, not_before, &out).ok());
    return out.at(0);
  }
  std::vector<std::string> RunFiles() {
    std::vector<std::string> names;
    DIR* d = opendir((dir_ + "/runs").c_str());
    if (d == nullptr) return names;
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    return names;
  }
  // Adds keys k<from>..k<to> with sequences from..to, all durable, and
  // writes their full segments.
  static void AddRange(DedupIndex& index, uint64_t from, uint64_t to, absl::Time at) {
    for (uint64_t s = from; s <= to; ++s) index.Add(Key(s), s, at);
    index.MarkDurable(to);
    ASSERT_TRUE(index.PersistDurable().ok());
  }

  std::string dir_;
};

TEST_F(DedupIndexTest, FindsEntriesInMemoryAndMissesOthers) {
  auto index = DedupIndex::Open(Opts(100));
  ASSERT_TRUE(index.ok()) << index.status();
  const absl::Time now = absl::Now();
  (*index)->Add("a", 1, now);
  (*index)->Add("b", 2, now);
  EXPECT_EQ(Find(**index, "a"), 1u);
  EXPECT_EQ(Find(**index, "b"), 2u);
  EXPECT_EQ(Find(**index, "c"), std::nullopt);
  // Published before the window's start: not a duplicate any more.
  EXPECT_EQ(Find(**index, "a", now + absl::Seconds(1)), std::nullopt);
  EXPECT_EQ((*index)->IndexedThrough(), 0u);
  EXPECT_EQ((*index)->RunCount(), 0u);
}

TEST_F(DedupIndexTest, OnlyDurableSegmentsAreWrittenAndRunsSurviveReopen) {
  const absl::Time now = absl::Now();
  {
    auto index = DedupIndex::Open(Opts(4));
    ASSERT_TRUE(index.ok()) << index.status();
    for (uint64_t s = 1; s <= 10; ++s) (*index)->Add(absl::StrCat("k", s), s, now);
    // Nothing durable yet: a crash could still take these events.
    ASSERT_TRUE((*index)->PersistDurable().ok());
    EXPECT_EQ((*index)->RunCount(), 0u);
    (*index)->MarkDurable(8);
    ASSERT_TRUE((*index)->PersistDurable().ok());
    EXPECT_EQ((*index)->IndexedThrough(), 8u);  // two full segments of 4
    for (uint64_t s = 1; s <= 10; ++s) EXPECT_EQ(Find(**index, absl::StrCat("k", s)), s);
  }
  auto index = DedupIndex::Open(Opts(4));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)->IndexedThrough(), 8u);
  for (uint64_t s = 1; s <= 8; ++s) EXPECT_EQ(Find(**index, absl::StrCat("k", s)), s) << s;
  // 9 and 10 were in memory only: the store re-adds them from its log.
  EXPECT_EQ(Find(**index, "k9"), std::nullopt);
  EXPECT_EQ(Find(**index, "k12345"), std::nullopt);
}

TEST_F(DedupIndexTest, MergesFourRunsIntoOneAndKeepsTheNewestEntry) {
  const absl::Time now = absl::Now();
  auto index = DedupIndex::Open(Opts(4));
  ASSERT_TRUE(index.ok()) << index.status();
  AddRange(**index, 1, 12, now);
  EXPECT_EQ((*index)->RunCount(), 3u);
  // The same key again (after its first copy's window, as the broker
  // would), in the fourth run.
  (*index)->Add(Key(1), 13, now + absl::Minutes(1));
  AddRange(**index, 14, 16, now);
  EXPECT_EQ((*index)->RunCount(), 1u);
  EXPECT_EQ(RunFiles().size(), 1u);
  EXPECT_EQ(Find(**index, Key(1)), 13u);
  for (uint64_t s = 2; s <= 16; ++s) {
    if (s == 13) continue;
    EXPECT_EQ(Find(**index, Key(s)), s) << s;
  }
  EXPECT_EQ((*index)->IndexedThrough(), 16u);
}

TEST_F(DedupIndexTest, ManyEntriesAcrossBlocks) {
  const absl::Time now = absl::Now();
  auto index = DedupIndex::Open(Opts(5000));
  ASSERT_TRUE(index.ok()) << index.status();
  AddRange(**index, 1, 20000, now);
  EXPECT_EQ((*index)->RunCount(), 1u);  // four runs of 5,000 merged
  int misses = 0;
  for (uint64_t s = 1; s <= 20000; s += 7) {
    misses += Find(**index, Key(s)) != std::optional<uint64_t>(s);
  }
  EXPECT_EQ(misses, 0);
  for (uint64_t s = 20001; s <= 21000; ++s) {
    EXPECT_EQ(Find(**index, Key(s)), std::nullopt);
  }
}

TEST_F(DedupIndexTest, MergeDropsEntriesOlderThanTheWindow) {
  const absl::Time old = absl::Now() - absl::Hours(2);
  const absl::Time now = absl::Now();
  auto index = DedupIndex::Open(Opts(4));
  ASSERT_TRUE(index.ok()) << index.status();
  AddRange(**index, 1, 4, old);  // a run wholly past the window
  AddRange(**index, 5, 8, now);  // this run stays
  EXPECT_EQ((*index)->RunCount(), 1u);
  EXPECT_EQ(Find(**index, Key(1)), std::nullopt);
  EXPECT_EQ(Find(**index, Key(5)), 5u);
}

TEST_F(DedupIndexTest, CrashLeftoversAreCleanedAndACorruptRunIsSetAsideForARebuild) {
  const absl::Time now = absl::Now();
  {
    auto index = DedupIndex::Open(Opts(4));
    ASSERT_TRUE(index.ok()) << index.status();
    AddRange(**index, 1, 8, now);
  }
  std::ofstream(dir_ + "/runs/run-9-12-0.dedup.tmp") << "half written";
  {
    auto index = DedupIndex::Open(Opts(4));
    ASSERT_TRUE(index.ok()) << index.status();
    EXPECT_EQ((*index)->IndexedThrough(), 8u);
    EXPECT_EQ(RunFiles().size(), 2u);
  }
  // Flip a byte of a run's fences: the file is not trusted.
  const std::string path = dir_ + "/runs/run-1-4-0.dedup";
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  f.seekp(size - 100);
  f.put('\x5a');
  f.close();
  auto index = DedupIndex::Open(Opts(4));
  ASSERT_TRUE(index.ok()) << index.status();
  // Both runs set aside (the second follows the first): the store re-adds
  // sequences 1.. from its log.
  EXPECT_EQ((*index)->IndexedThrough(), 0u);
  EXPECT_EQ((*index)->RunCount(), 0u);
  EXPECT_EQ(Find(**index, Key(5)), std::nullopt);
  std::vector<std::string> files = RunFiles();
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files,
            (std::vector<std::string>{"run-1-4-0.dedup.corrupt", "run-5-8-0.dedup.corrupt"}));
}

TEST_F(DedupIndexTest, ALaterCorruptRunKeepsTheEarlierOnes) {
  {
    auto index = DedupIndex::Open(Opts(4));
    ASSERT_TRUE(index.ok()) << index.status();
    AddRange(**index, 1, 8, absl::Now());
  }
  ASSERT_EQ(truncate((dir_ + "/runs/run-5-8-0.dedup").c_str(), 10), 0);
  auto index = DedupIndex::Open(Opts(4));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)->IndexedThrough(), 4u);
  EXPECT_EQ(Find(**index, Key(3)), 3u);
}

TEST_F(DedupIndexTest, ARunRemovedByHandSetsAsideTheRunsAfterIt) {
  {
    auto index = DedupIndex::Open(Opts(4));
    ASSERT_TRUE(index.ok()) << index.status();
    AddRange(**index, 1, 12, absl::Now());
  }
  ASSERT_EQ(unlink((dir_ + "/runs/run-5-8-0.dedup").c_str()), 0);
  auto index = DedupIndex::Open(Opts(4));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)->IndexedThrough(), 4u);  // 5.. rebuilt from the log
  EXPECT_EQ(Find(**index, Key(2)), 2u);
  EXPECT_EQ(Find(**index, Key(10)), std::nullopt);
}

TEST_F(DedupIndexTest, TruncatedRunIsSetAsideNotACrash) {
  {
    auto index = DedupIndex::Open(Opts(4));
    ASSERT_TRUE(index.ok()) << index.status();
    AddRange(**index, 1, 4, absl::Now());
  }
  ASSERT_EQ(truncate((dir_ + "/runs/run-1-4-0.dedup").c_str(), 10), 0);
  auto index = DedupIndex::Open(Opts(4));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ((*index)->IndexedThrough(), 0u);
}

}  // namespace
}  // namespace pettube::broker
