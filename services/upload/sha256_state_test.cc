#include "services/upload/sha256_state.h"

#include "gtest/gtest.h"

namespace pettube::upload {
namespace {

TEST(Sha256StateTest, DigestsMatchKnownVectors) {
  Sha256State empty;
  EXPECT_EQ(empty.HexDigest(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256State abc;
  abc.Update("abc");
  EXPECT_EQ(abc.HexDigest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256StateTest, SavedStateResumesWhereItStopped) {
  Sha256State whole;
  whole.Update("hello, resumable world");
  Sha256State first;
  first.Update("hello, ");
  const std::string saved = first.Save();
  auto resumed = Sha256State::Restore(saved);
  ASSERT_TRUE(resumed.ok());
  resumed->Update("resumable world");
  EXPECT_EQ(resumed->HexDigest(), whole.HexDigest());
  // Taking a digest does not disturb the running state.
  EXPECT_EQ(resumed->HexDigest(), whole.HexDigest());
}

TEST(Sha256StateTest, GarbageStateIsRefused) {
  EXPECT_EQ(Sha256State::Restore("short").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pettube::upload
