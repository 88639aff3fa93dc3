#include "services/upload/fs_blob_store.h"

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "libs/testing/child_process.h"

namespace pettube::upload {
namespace {

class FsBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = testing::NewTempDir("blobs");
    auto store = FsBlobStore::Open(root_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  std::string ReadAll(absl::string_view bucket, absl::string_view key) {
    auto reader = store_->Open(bucket, key);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return "";
    std::string out;
    EXPECT_TRUE((*reader)->ReadAt(0, (*reader)->size(), &out).ok());
    return out;
  }

  std::string root_;
  std::unique_ptr<FsBlobStore> store_;
};

TEST_F(FsBlobStoreTest, StagedBytesAreInvisibleUntilCommitted) {
  auto writer = store_->OpenStaged("up1", 0);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append("hello ").ok());
  ASSERT_TRUE((*writer)->Append("world").ok());
  ASSERT_TRUE((*writer)->Sync().ok());
  EXPECT_EQ(store_->Open("originals", "u1/m1/source").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(*store_->Exists("originals", "u1/m1/source"));
  ASSERT_TRUE(store_->CommitStaged("up1", "originals", "u1/m1/source").ok());
  EXPECT_EQ(ReadAll("originals", "u1/m1/source"), "hello world");
  // A second commit of the same staging reports it already happened.
  EXPECT_EQ(store_->CommitStaged("up1", "originals", "u1/m1/source").code(),
            absl::StatusCode::kNotFound);
}

TEST_F(FsBlobStoreTest, ResumeDropsBytesPastTheRecordedOffset) {
  {
    auto writer = store_->OpenStaged("up2", 0);
    ASSERT_TRUE((*writer)->Append("0123456789").ok());
  }
  // Recorded offset 4: "456789" were never acknowledged.
  auto resumed = store_->OpenStaged("up2", 4);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_TRUE((*resumed)->Append("abcd").ok());
  ASSERT_TRUE(store_->CommitStaged("up2", "renditions", "u1/m1/720p.mp4").ok());
  EXPECT_EQ(ReadAll("renditions", "u1/m1/720p.mp4"), "0123abcd");
  EXPECT_EQ(store_->OpenStaged("up2", 0).ok(), true);
  EXPECT_EQ(store_->OpenStaged("missing", 5).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(FsBlobStoreTest, RangesListsAndDeletes) {
  for (const char* key : {"u1/m1/a.mp4", "u1/m1/hls/b.m3u8", "u1/m10/c.mp4"}) {
    auto w = store_->OpenStaged("s", 0);
    ASSERT_TRUE((*w)->Append(key).ok());
    ASSERT_TRUE(store_->CommitStaged("s", "renditions", key).ok());
  }
  auto reader = store_->Open("renditions", "u1/m1/a.mp4");
  std::string part;
  ASSERT_TRUE((*reader)->ReadAt(3, 100, &part).ok());
  EXPECT_EQ(part, "m1/a.mp4");
  auto listed = store_->List("renditions", "u1/m1/");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, (std::vector<std::string>{"u1/m1/a.mp4", "u1/m1/hls/b.m3u8"}));
  ASSERT_TRUE(store_->Delete("renditions", "u1/m1/hls/b.m3u8").ok());
  ASSERT_TRUE(store_->Delete("renditions", "u1/m1/hls/b.m3u8").ok());  // idempotent
  struct stat st;
  EXPECT_NE(::stat((root_ + "/renditions/u1/m1/hls").c_str(), &st), 0) << "an emptied directory is removed";
  EXPECT_EQ(store_->List("renditions", "u9/")->size(), 0u);
}

TEST_F(FsBlobStoreTest, KeysCannotLeaveTheRoot) {
  for (const char* key : {"../escape", "/etc/passwd", "a/../../b", "a/./b"}) {
    EXPECT_EQ(store_->Open("originals", key).status().code(), absl::StatusCode::kInvalidArgument)
        << key;
    EXPECT_EQ(store_->CommitStaged("s", "originals", key).code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(store_->Open("../originals", "a").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->OpenStaged("../x", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List("originals", "../").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FsBlobStoreTest, ListStagedNamesWhatACrashLeft) {
  ASSERT_TRUE(store_->OpenStaged("left1", 0).ok());
  ASSERT_TRUE(store_->OpenStaged("left2", 0).ok());
  ASSERT_TRUE(store_->DiscardStaged("left2").ok());
  auto staged = store_->ListStaged();
  ASSERT_TRUE(staged.ok());
  EXPECT_EQ(*staged, std::vector<std::string>{"left1"});
}

}  // namespace
}  // namespace pettube::upload
