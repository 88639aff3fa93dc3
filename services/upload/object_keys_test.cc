#include "services/upload/object_keys.h"

#include <string>

#include "gtest/gtest.h"

namespace pettube::upload {
namespace {

TEST(ObjectKeysTest, OrdinaryKeysAreAccepted) {
  for (const char* key : {"u1/m1/source", "u1/m1/hls/720p.m3u8", "a", "a-b_c.d/e"}) {
    EXPECT_TRUE(ValidateKey("key", key).ok()) << key;
  }
}

TEST(ObjectKeysTest, EveryTraversalAndOddByteIsRefusedWithTheRule) {
  const std::string nul_key("u1/m\0/x", 7);
  for (const std::string& key :
       {std::string(""), std::string("/etc/passwd"), std::string("u1/../../etc"),
        std::string(".."), std::string("u1/./x"), std::string("u1//x"), std::string("u1/x/"),
        std::string("u1\\..\\x"), std::string("u1/%2e%2e/x"), std::string("u1/m 1/x"), nul_key,
        std::string("u1/\xc3\xa9/x"), std::string(600, 'a'),
        std::string("a/b/c/d/e/f/g/h/i")}) {
    absl::Status s = ValidateKey("key", key);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(s.message().substr(0, 4), "key:") << s;
  }
}

TEST(ObjectKeysTest, OnlyTheTwoBucketsExist) {
  EXPECT_TRUE(ValidateBucket("bucket", "originals").ok());
  EXPECT_TRUE(ValidateBucket("bucket", "renditions").ok());
  EXPECT_FALSE(ValidateBucket("bucket", "../originals").ok());
  EXPECT_FALSE(ValidateBucket("bucket", "").ok());
}

TEST(ObjectKeysTest, IdsAreRandomAndValid) {
  const std::string a = NewMediaId(), b = NewMediaId();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 24u);
  EXPECT_EQ(NewUploadId().size(), 32u);
  EXPECT_TRUE(ValidateId("id", a).ok());
  EXPECT_FALSE(ValidateId("id", "a/b").ok());
  EXPECT_EQ(OriginalKey("u1", "m1"), "u1/m1/source");
}

}  // namespace
}  // namespace pettube::upload
