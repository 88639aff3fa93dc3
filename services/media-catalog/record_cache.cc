#include "services/media-catalog/record_cache.h"

#include "absl/hash/hash.h"

namespace pettube::catalog {

RecordCache::RecordCache(size_t capacity_bytes) : shard_capacity_(capacity_bytes / kShards) {}

RecordCache::Shard& RecordCache::ShardFor(absl::string_view id) const {
  return shards_[absl::Hash<absl::string_view>()(id) % kShards];
}

bool RecordCache::Get(absl::string_view id, std::string* out) const {
  Shard& shard = ShardFor(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.records.find(id);
  if (it == shard.records.end()) return false;
  out->assign(it->second);
  return true;
}

uint64_t RecordCache::Ticket(absl::string_view id) const {
  Shard& shard = ShardFor(id);
  absl::MutexLock lock(&shard.mu);
  return shard.generation;
}

void RecordCache::Fill(absl::string_view id, absl::string_view bytes, uint64_t ticket) {
  Shard& shard = ShardFor(id);
  absl::MutexLock lock(&shard.mu);
  if (shard.generation != ticket) return;  // a write came after the read began
  HoldLocked(shard, id, bytes);
}

void RecordCache::Put(absl::string_view id, absl::string_view bytes) {
  Shard& shard = ShardFor(id);
  absl::MutexLock lock(&shard.mu);
  ++shard.generation;
  HoldLocked(shard, id, bytes);
}

void RecordCache::Erase(absl::string_view id) {
  Shard& shard = ShardFor(id);
  absl::MutexLock lock(&shard.mu);
  ++shard.generation;
  EraseLocked(shard, id);
}

size_t RecordCache::bytes() const {
  size_t total = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    total += shard.bytes;
  }
  return total;
}

void RecordCache::HoldLocked(Shard& shard, absl::string_view id, absl::string_view bytes) {
  EraseLocked(shard, id);
  const size_t charge = Charge(id, bytes);
  if (charge > shard_capacity_) return;  // would not fit even alone
  while (shard.bytes + charge > shard_capacity_ && !shard.records.empty()) {
    auto victim = shard.records.begin();
    shard.bytes -= Charge(victim->first, victim->second);
    shard.records.erase(victim);
  }
  shard.records.emplace(std::string(id), std::string(bytes));
  shard.bytes += charge;
}

void RecordCache::EraseLocked(Shard& shard, absl::string_view id) {
  auto it = shard.records.find(id);
  if (it == shard.records.end()) return;
  shard.bytes -= Charge(it->first, it->second);
  shard.records.erase(it);
}

}  // namespace pettube::catalog
