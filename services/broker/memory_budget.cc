#include "services/broker/memory_budget.h"

#include "absl/strings/str_cat.h"

namespace pettube::broker {

absl::StatusOr<MemoryBudget> MemoryBudget::Divide(int64_t total_bytes) {
  if (total_bytes < kMinBytes) {
    return absl::InvalidArgumentError(absl::StrCat("memory_budget_bytes: must be at least ",
                                                   kMinBytes, " (8 MiB), got ", total_bytes));
  }
  const auto total = static_cast<size_t>(total_bytes);
  MemoryBudget budget;
  budget.write_buffer_bytes = total / 2;
  budget.dedup_index_bytes = total / 12;
  budget.event_cache_bytes = total / 6;
  budget.allocator_free_keep_bytes = total / 12;
  // The rest, so the parts add up to the whole.
  budget.block_cache_bytes = total - budget.write_buffer_bytes - budget.event_cache_bytes -
                             budget.allocator_free_keep_bytes - budget.dedup_index_bytes;
  return budget;
}

}  // namespace pettube::broker
