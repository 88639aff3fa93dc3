#include "libs/signed_url/hmac_sha256.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace pettube::signed_url {
namespace {

// RFC 4231, test cases 2 and 6 (a key longer than SHA-256's block).
TEST(HmacSha256Test, MatchesRfc4231Vectors) {
  EXPECT_EQ(absl::BytesToHexString(HmacSha256("Jefe").Mac("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(
      absl::BytesToHexString(HmacSha256(std::string(131, '\xaa'))
                                 .Mac("Test Using Larger Than Block-Size Key - Hash Key First")),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(HmacSha256Test, RepeatedAndConcurrentCallsAgree) {
  const HmacSha256 mac("a key of at least thirty-two bytes!!");
  const std::string want = mac.Mac("message");
  EXPECT_EQ(mac.Mac("message"), want);
  EXPECT_NE(mac.Mac("massage"), want);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) mismatches[t] += mac.Mac("message") != want;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// A context is reused: nothing of one message may leak into the next.
TEST(HmacSha256Test, AReusedContextStartsFromTheKeyAlone) {
  const HmacSha256 mac("Jefe");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(absl::BytesToHexString(mac.Mac("what do ya want for nothing?")),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_EQ(mac.Mac(std::string(1000, 'x')), HmacSha256("Jefe").Mac(std::string(1000, 'x')));
    EXPECT_EQ(mac.Mac(""), HmacSha256("Jefe").Mac(""));
  }
}

TEST(HmacSha256Test, MovedFromKeepsWorkingInItsNewHome) {
  HmacSha256 a("Jefe");
  (void)a.Mac("warm");  // a context to move along with it
  HmacSha256 b(std::move(a));
  EXPECT_EQ(absl::BytesToHexString(b.Mac("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  HmacSha256 c("another key");
  (void)c.Mac("warm");
  c = std::move(b);
  EXPECT_EQ(absl::BytesToHexString(c.Mac("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace pettube::signed_url
