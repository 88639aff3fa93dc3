#include "services/broker/allocator_limits.h"

// gperftools' C interface, weak: resolved only when tcmalloc is linked.
extern "C" {
int MallocExtension_SetNumericProperty(const char* property, size_t value) __attribute__((weak));
int MallocExtension_GetNumericProperty(const char* property, size_t* value) __attribute__((weak));
void MallocExtension_ReleaseToSystem(size_t num_bytes) __attribute__((weak));
}

namespace pettube::broker {
namespace {

int64_t Property(const char* name) {
  size_t value = 0;
  if (MallocExtension_GetNumericProperty == nullptr ||
      MallocExtension_GetNumericProperty(name, &value) == 0) {
    return 0;
  }
  return static_cast<int64_t>(value);
}

}  // namespace

bool LimitAllocatorThreadCaches(size_t bytes) {
  if (MallocExtension_SetNumericProperty == nullptr) return false;
  return MallocExtension_SetNumericProperty("tcmalloc.max_total_thread_cache_bytes", bytes) != 0;
}

void TrimAllocatorFreeMemory(size_t keep_bytes) {
  if (MallocExtension_ReleaseToSystem == nullptr) return;
  const auto free_bytes = static_cast<size_t>(Property("tcmalloc.pageheap_free_bytes"));
  if (free_bytes > keep_bytes) MallocExtension_ReleaseToSystem(free_bytes - keep_bytes);
}

AllocatorStats ReadAllocatorStats() {
  AllocatorStats stats;
  stats.in_use = Property("generic.current_allocated_bytes");
  stats.page_heap_free = Property("tcmalloc.pageheap_free_bytes");
  stats.cached_free = Property("tcmalloc.thread_cache_free_bytes") +
                      Property("tcmalloc.central_cache_free_bytes") +
                      Property("tcmalloc.transfer_cache_free_bytes");
  return stats;
}

}  // namespace pettube::broker
