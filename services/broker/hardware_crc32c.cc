#include "services/broker/hardware_crc32c.h"

#include <nmmintrin.h>

#include <array>
#include <cstring>

namespace pettube::broker {
namespace {

// The reflected Castagnoli polynomial.
constexpr uint32_t kPoly = 0x82f63b78;

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    table[i] = c;
  }
  return table;
}

__attribute__((target("sse4.2"))) uint32_t HardwareExtend(uint32_t crc, const char* data,
                                                          size_t size) {
  uint64_t l = crc ^ 0xffffffffu;
  while (size >= 8) {
    uint64_t word;
    std::memcpy(&word, data, 8);
    l = _mm_crc32_u64(l, word);
    data += 8;
    size -= 8;
  }
  uint32_t s = static_cast<uint32_t>(l);
  while (size-- > 0) s = _mm_crc32_u8(s, static_cast<uint8_t>(*data++));
  return s ^ 0xffffffffu;
}

}  // namespace

uint32_t Crc32cExtendPortable(uint32_t crc, const char* data, size_t size) {
  static const std::array<uint32_t, 256> table = MakeTable();
  uint32_t s = crc ^ 0xffffffffu;
  for (size_t i = 0; i < size; ++i) {
    s = table[(s ^ static_cast<uint8_t>(data[i])) & 0xff] ^ (s >> 8);
  }
  return s ^ 0xffffffffu;
}

bool Crc32cIsHardware() {
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  return hardware;
}

uint32_t Crc32cExtend(uint32_t crc, const char* data, size_t size) {
  return Crc32cIsHardware() ? HardwareExtend(crc, data, size)
                            : Crc32cExtendPortable(crc, data, size);
}

}  // namespace pettube::broker

// Takes the place of librocksdb's own (see the header).
namespace rocksdb::crc32c {
uint32_t Extend(uint32_t crc, const char* data, size_t size) {
  return pettube::broker::Crc32cExtend(crc, data, size);
}
}  // namespace rocksdb::crc32c
