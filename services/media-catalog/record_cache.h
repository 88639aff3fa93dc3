#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "services/media-catalog/ticketed_cache.h"

namespace pettube::catalog {

// Charged per entry on top of its key and value: the table slot and the
// two strings' headers.
struct RecordCharge {
  size_t operator()(absl::string_view id, const std::string& bytes) const {
    return id.size() + bytes.size() + 80;
  }
};

// Serialized media records in memory, up to a byte budget, in front of the
// store's table reads, kept exact by the store's writes (ticketed_cache.h).
// RocksDB's row cache does the same job but touches more unrelated memory
// per hit (hash chain, handle, value, LRU list), and at a million records
// read at random that costs more than the lookup itself
// (docs/benchmarks.md, "Sixth look at GetMedia").
using RecordCache = TicketedCache<std::string, RecordCharge>;

}  // namespace pettube::catalog
