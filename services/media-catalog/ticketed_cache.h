#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace pettube::catalog {

// Values derived from the store's records, by media id, up to a byte
// budget, that are never staler than the store: whoever writes the store
// tells the cache of every write, and a read fills it only if no write
// reached the id's shard since the read began:
//   ticket = Ticket(id); value = read the store (and derive); Fill(id, value, ticket)
// A write's Put (or Erase, once the write is visible to readers, or when
// its fate is unknown) moves the shard's generation on, so a read that
// began before it never fills.
//
// When a shard is over its share of the budget it evicts arbitrary entries
// (no recency order: a miss only costs a store read).
//
// `Charge(id, value)` is the bytes an entry costs; `Value` is copied out
// by Get, so large values are best held through a shared_ptr.
//
// Thread-safe.
template <typename Value, typename Charge>
class TicketedCache {
 public:
  explicit TicketedCache(size_t capacity_bytes) : shard_capacity_(capacity_bytes / kShards) {}

  // Copies `id`'s value into `out`; false if not held.
  bool Get(absl::string_view id, Value* out) const {
    Shard& shard = ShardFor(id);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.values.find(id);
    if (it == shard.values.end()) return false;
    *out = it->second;
    return true;
  }
  // Taken before a store read whose result is then offered to Fill.
  uint64_t Ticket(absl::string_view id) const {
    Shard& shard = ShardFor(id);
    absl::MutexLock lock(&shard.mu);
    return shard.generation;
  }
  // Holds `value` for `id` unless a Put or Erase reached its shard since
  // `ticket` was taken.
  void Fill(absl::string_view id, Value value, uint64_t ticket) {
    Shard& shard = ShardFor(id);
    absl::MutexLock lock(&shard.mu);
    if (shard.generation != ticket) return;  // a write came after the read began
    HoldLocked(shard, id, std::move(value));
  }
  // `id`'s value as a write just stored it.
  void Put(absl::string_view id, Value value) {
    Shard& shard = ShardFor(id);
    absl::MutexLock lock(&shard.mu);
    ++shard.generation;
    HoldLocked(shard, id, std::move(value));
  }
  // Forgets `id` (a write whose value is not derived here, or whose
  // outcome is unknown).
  void Erase(absl::string_view id) {
    Shard& shard = ShardFor(id);
    absl::MutexLock lock(&shard.mu);
    ++shard.generation;
    EraseLocked(shard, id);
  }

  // Bytes charged for what is held.
  size_t bytes() const {
    size_t total = 0;
    for (const Shard& shard : shards_) {
      absl::MutexLock lock(&shard.mu);
      total += shard.bytes;
    }
    return total;
  }

 private:
  static constexpr int kShards = 64;

  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, Value> values ABSL_GUARDED_BY(mu);
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
    uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  };

  Shard& ShardFor(absl::string_view id) const {
    return shards_[absl::Hash<absl::string_view>()(id) % kShards];
  }
  // Stores `value` for `id` and evicts others until the shard fits.
  void HoldLocked(Shard& shard, absl::string_view id, Value value)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    EraseLocked(shard, id);
    const size_t charge = Charge()(id, value);
    if (charge > shard_capacity_) return;  // would not fit even alone
    while (shard.bytes + charge > shard_capacity_ && !shard.values.empty()) {
      auto victim = shard.values.begin();
      shard.bytes -= Charge()(victim->first, victim->second);
      shard.values.erase(victim);
    }
    shard.values.emplace(std::string(id), std::move(value));
    shard.bytes += charge;
  }
  void EraseLocked(Shard& shard, absl::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    auto it = shard.values.find(id);
    if (it == shard.values.end()) return;
    shard.bytes -= Charge()(it->first, it->second);
    shard.values.erase(it);
  }

  const size_t shard_capacity_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace pettube::catalog
