#pragma once

#include <cstddef>
#include <cstdint>

namespace pettube::broker {

// CRC-32C (Castagnoli) of `size` bytes at `data`, continuing from `crc`
// (the value returned for the bytes before them; 0 to start), as RocksDB
// computes it for every record of its write-ahead log.
//
// Debian's RocksDB is built portable, without SSE4.2, and computes it with
// tables: about 6% of the broker's CPU during a 512 B publish. This file
// also defines rocksdb::crc32c::Extend, which librocksdb calls through its
// PLT, so the broker's definition (the SSE4.2 crc32 instruction, tables on
// a CPU without it) takes the library's place in every RocksDB call. The
// result is the same function; only the speed differs.
uint32_t Crc32cExtend(uint32_t crc, const char* data, size_t size);

// The same with tables only (the fallback; for tests).
uint32_t Crc32cExtendPortable(uint32_t crc, const char* data, size_t size);

// Whether Crc32cExtend uses the crc32 instruction on this CPU.
bool Crc32cIsHardware();

}  // namespace pettube::broker
