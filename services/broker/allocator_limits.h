#pragma once

#include <cstddef>
#include <cstdint>

namespace pettube::broker {

// The process allocator's own caches count against the broker's memory as
// much as its data does. With gperftools' tcmalloc (what //bazel:malloc
// links) these bound and report them; with any other allocator (the
// sanitizer builds) they do nothing and report zeros.

// Caps the memory tcmalloc keeps in its per-thread free lists, all
// threads together (tcmalloc's default is 32 MiB). False if the allocator
// is not tcmalloc.
bool LimitAllocatorThreadCaches(size_t bytes);

// Returns the allocator's free pages beyond `keep_bytes` to the OS (they
// stay reserved and fault back in when reused). Keeping some avoids
// re-faulting the next memtable's worth of pages after every flush.
void TrimAllocatorFreeMemory(size_t keep_bytes);

struct AllocatorStats {
  int64_t in_use = 0;          // allocated by the program
  int64_t page_heap_free = 0;  // free pages kept mapped
  int64_t cached_free = 0;     // free objects in thread, central and transfer caches
};
AllocatorStats ReadAllocatorStats();

}  // namespace pettube::broker
