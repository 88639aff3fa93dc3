#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"

namespace pettube::broker {

// The broker's one memory bound for what grows with traffic
// (--memory_budget_bytes), divided between its parts: RocksDB's memtables
// and block cache (one LRU cache, RocksDbBrokerStore::Options), the
// broker's cache of recent events (Broker::Options), and the free pages
// the allocator keeps for the next memtable, and the dedup table's memory
// (DedupIndex: its segments in memory, run filters and fences). Half goes
// to the memtables (the log's flush at a third of it, so one is written
// while up to two flush; the small column families' at half), a twelfth
// to the dedup table, a sixth to recent events, a twelfth to kept free
// pages (half a log memtable: the freed memtable's own pages serve the
// rest), and the rest, a sixth, to the blocks read back (reads of the log
// are sequential: a few blocks serve a refill). The dedup table's twelfth
// came from the blocks: taken from the memtables instead, fan-out from a
// backlog lost about a tenth (docs/benchmarks.md, run 22). Not in
// it: each subscription's own bound (--max_subscription_bytes) and the
// process's fixed cost (code, threads, gRPC, the allocator's caches).
struct MemoryBudget {
  static constexpr int64_t kDefaultBytes = 24 << 20;
  // Below this the parts fall under RocksDbBrokerStore's minimums.
  static constexpr int64_t kMinBytes = 8 << 20;

  // INVALID_ARGUMENT below kMinBytes.
  static absl::StatusOr<MemoryBudget> Divide(int64_t total_bytes);

  size_t write_buffer_bytes = 0;
  size_t block_cache_bytes = 0;
  size_t event_cache_bytes = 0;
  // Sizes the dedup table's in-memory segments (two at a time: one
  // filling, one being written to a run file).
  size_t dedup_index_bytes = 0;
  // Free pages the allocator keeps after a flush or compaction (the rest
  // go back to the OS), so the next memtable reuses them instead of
  // faulting every page in again (which cost a fifth of the CPU of a 4 KiB
  // publish when all were returned).
  size_t allocator_free_keep_bytes = 0;
  // Beside the budget, fixed: tcmalloc's per-thread free lists (its own
  // default, 32 MiB, would be more than the whole default budget).
  size_t allocator_thread_cache_bytes = 2 << 20;
};

}  // namespace pettube::broker
