#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace pettube::catalog {

// Serialized media records in memory, up to a byte budget, in front of the
// store's table reads. RocksDB's row cache does the same job but touches
// more unrelated memory per hit (hash chain, handle, value, LRU list), and
// at a million records read at random that costs more than the lookup
// itself (docs/benchmarks.md, "Sixth look at GetMedia").
//
// Never staler than the store, because the store tells it of every write
// and a read fills it only if no write reached the record's shard since
// the read began:
//   ticket = Ticket(id); bytes = read the store; Fill(id, bytes, ticket)
// A write's Put (or Erase, when the write's fate is unknown) moves the
// shard's generation on, so a read that began before it never fills.
//
// When a shard is over its share of the budget it evicts arbitrary entries
// (no recency order: a miss only costs a store read).
//
// Thread-safe.
class RecordCache {
 public:
  explicit RecordCache(size_t capacity_bytes);

  // Copies the record's bytes into `out`; false if not held.
  bool Get(absl::string_view id, std::string* out) const;
  // Taken before a store read whose result is then offered to Fill.
  uint64_t Ticket(absl::string_view id) const;
  // Holds `bytes` as `id`'s record unless a Put or Erase reached its shard
  // since `ticket` was taken.
  void Fill(absl::string_view id, absl::string_view bytes, uint64_t ticket);
  // `id`'s record as a write just stored it.
  void Put(absl::string_view id, absl::string_view bytes);
  // Forgets `id` (a write whose outcome is unknown).
  void Erase(absl::string_view id);

  // Bytes charged for what is held (keys, values and per-entry overhead).
  size_t bytes() const;

 private:
  static constexpr int kShards = 64;
  // Charged per entry on top of its key and value: the table slot and the
  // two strings' headers.
  static constexpr size_t kEntryOverhead = 80;

  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, std::string> records ABSL_GUARDED_BY(mu);
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
    uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  };

  static size_t Charge(absl::string_view id, absl::string_view bytes) {
    return id.size() + bytes.size() + kEntryOverhead;
  }
  Shard& ShardFor(absl::string_view id) const;
  // Stores `bytes` for `id` and evicts others until the shard fits.
  void HoldLocked(Shard& shard, absl::string_view id, absl::string_view bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void EraseLocked(Shard& shard, absl::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const size_t shard_capacity_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace pettube::catalog
