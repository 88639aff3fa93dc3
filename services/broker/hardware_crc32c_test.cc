#include "services/broker/hardware_crc32c.h"

#include <dlfcn.h>

#include <cstdlib>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/broker/rocksdb_broker_store.h"

namespace rocksdb::crc32c {
uint32_t Extend(uint32_t crc, const char* data, size_t size);
}

namespace pettube::broker {
namespace {

uint32_t Crc(const std::string& s) { return Crc32cExtend(0, s.data(), s.size()); }

// RFC 3720 (iSCSI) B.4 and the usual check value.
TEST(HardwareCrc32cTest, KnownValues) {
  EXPECT_EQ(Crc("123456789"), 0xe3069283u);
  EXPECT_EQ(Crc(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(Crc(ascending), 0x46dd794eu);
  EXPECT_EQ(Crc(""), 0u);
}

// Any split continues to the same value, and the tables agree with the
// instruction at every length and alignment.
TEST(HardwareCrc32cTest, ExtendsInPiecesAndMatchesTheTables) {
  std::mt19937 rng(7);
  std::string data(1000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  const uint32_t whole = Crc(data);
  EXPECT_EQ(Crc32cExtendPortable(0, data.data(), data.size()), whole);
  for (size_t cut : {0u, 1u, 7u, 8u, 9u, 500u, 999u, 1000u}) {
    const uint32_t first = Crc32cExtend(0, data.data(), cut);
    EXPECT_EQ(Crc32cExtend(first, data.data() + cut, data.size() - cut), whole) << cut;
  }
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t size = 0; size < 40; ++size) {
      EXPECT_EQ(Crc32cExtend(5, data.data() + offset, size),
                Crc32cExtendPortable(5, data.data() + offset, size))
          << offset << " " << size;
    }
  }
}

// librocksdb's calls reach this definition (the process resolves the
// symbol to it first), and a log written with it is read back on reopen,
// where RocksDB checks every record's CRC.
TEST(HardwareCrc32cTest, RocksDbUsesItAndReadsItsOwnLogBack) {
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "_ZN7rocksdb6crc32c6ExtendEjPKcm"),
            reinterpret_cast<void*>(&rocksdb::crc32c::Extend));
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/crc");
  {
    auto store = RocksDbBrokerStore::Open(dir, absl::Hours(1));
    ASSERT_TRUE(store.ok()) << store.status();
    auto batch = (*store)->NewBatch();
    StoredEvent e;
    e.sequence = 1;
    e.wire = std::string(700, 'x');
    batch->PutEvent(e);
    ASSERT_TRUE((*store)->Write(*batch, /*sync=*/false).ok());
  }
  auto store = RocksDbBrokerStore::Open(dir, absl::Hours(1));
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = (*store)->GetEvent(1);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->wire, std::string(700, 'x'));
}

}  // namespace
}  // namespace pettube::broker
