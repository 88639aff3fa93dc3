#include "services/broker/dedup_run.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace pettube::broker {
namespace {

class DedupRunTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/runs-", ++counter_); }

  // Writes keys "key-<i>" for i in [0, n) with sequence i + 1, as a run.
  std::string WriteRun(int n, int64_t time_us = 1000) {
    EXPECT_EQ(system(absl::StrCat("mkdir -p ", dir_).c_str()), 0);
    std::vector<std::pair<uint64_t, std::string>> keys;
    for (int i = 0; i < n; ++i) {
      std::string key = absl::StrCat("key-", i);
      keys.emplace_back(DedupKeyHash(key), key);
    }
    std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) {
      return DedupEntryBefore(a.first, a.second, b.first, b.second);
    });
    const std::string path = absl::StrCat(dir_, "/run-1-", n, "-0.dedup");
    DedupRunWriter writer(path, n);
    EXPECT_TRUE(writer.Start().ok());
    for (const auto& [hash, key] : keys) {
      const uint64_t seq = std::stoull(key.substr(4)) + 1;
      EXPECT_TRUE(writer.Add(hash, key, seq, time_us).ok());
    }
    EXPECT_TRUE(writer.Finish(1, n, 0).ok());
    return path;
  }

  static int counter_;
  std::string dir_;
};
int DedupRunTest::counter_ = 0;

TEST_F(DedupRunTest, FindsEveryKeyItHoldsAndNoOther) {
  const std::string path = WriteRun(3000);
  auto run = DedupRun::Load(path);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ((*run)->meta().entries, 3000u);
  EXPECT_EQ((*run)->meta().first, 1u);
  EXPECT_EQ((*run)->meta().last, 3000u);
  EXPECT_EQ((*run)->meta().max_time_us, 1000);
  EXPECT_GT((*run)->blocks(), 10u);
  for (int i = 0; i < 3000; ++i) {
    const std::string key = absl::StrCat("key-", i);
    auto found = (*run)->Find(key, DedupKeyHash(key));
    ASSERT_TRUE(found.ok()) << found.status();
    ASSERT_TRUE(found->has_value()) << key;
    EXPECT_EQ((*found)->first, static_cast<uint64_t>(i + 1));
    EXPECT_EQ((*found)->second, 1000);
  }
  int found_absent = 0;
  for (int i = 3000; i < 6000; ++i) {
    const std::string key = absl::StrCat("key-", i);
    auto found = (*run)->Find(key, DedupKeyHash(key));
    ASSERT_TRUE(found.ok());
    found_absent += found->has_value();
  }
  EXPECT_EQ(found_absent, 0);
}

TEST_F(DedupRunTest, ACursorReadsEveryEntryInOrder) {
  auto run = DedupRun::Load(WriteRun(2000));
  ASSERT_TRUE(run.ok()) << run.status();
  DedupRunCursor cursor(**run);
  int n = 0;
  uint64_t last_hash = 0;
  std::string last_key;
  while (cursor.Next()) {
    const DedupRunEntry& e = cursor.entry();
    if (n > 0) {
      EXPECT_TRUE(DedupEntryBefore(last_hash, last_key, e.hash, e.key));
    }
    last_hash = e.hash;
    last_key = std::string(e.key);
    ++n;
  }
  EXPECT_TRUE(cursor.status().ok());
  EXPECT_EQ(n, 2000);
}

TEST_F(DedupRunTest, AnEmptyRunFindsNothing) {
  auto run = DedupRun::Load(WriteRun(0));
  ASSERT_TRUE(run.ok()) << run.status();
  auto found = (*run)->Find("key-0", DedupKeyHash("key-0"));
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
  DedupRunCursor cursor(**run);
  EXPECT_FALSE(cursor.Next());
}

TEST_F(DedupRunTest, ACorruptBlockIsDataLossOnRead) {
  const std::string path = WriteRun(500);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  auto run = DedupRun::Load(path);  // the footer's checksum covers fences and filter only
  ASSERT_TRUE(run.ok()) << run.status();
  DedupRunCursor cursor(**run);
  while (cursor.Next()) {
  }
  EXPECT_EQ(cursor.status().code(), absl::StatusCode::kDataLoss) << cursor.status();
}

TEST_F(DedupRunTest, AnUnfinishedWriterLeavesNoFile) {
  ASSERT_EQ(system(absl::StrCat("mkdir -p ", dir_).c_str()), 0);
  const std::string path = absl::StrCat(dir_, "/run-1-1-0.dedup");
  {
    DedupRunWriter writer(path, 1);
    ASSERT_TRUE(writer.Start().ok());
    ASSERT_TRUE(writer.Add(DedupKeyHash("a"), "a", 1, 1).ok());
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0);
  EXPECT_EQ(DedupRun::Load(path).status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace pettube::broker
