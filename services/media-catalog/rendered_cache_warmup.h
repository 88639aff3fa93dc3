#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "services/media-catalog/media_view.h"
#include "services/media-catalog/rendered_media.h"
#include "services/media-catalog/rocksdb_media_store.h"

namespace pettube::catalog {

// Renders every record of `store` into `cache` (--warm_row_cache), each
// read behind a ticket so that a write during the warm-up (the projection
// runs meanwhile) is never hidden by an older rendering. Returns how many
// records were read; the store's error if a read fails. The reads fill the
// store's own row and record caches too.
absl::StatusOr<int64_t> WarmRenderedCache(RocksDbMediaStore& store, const MediaView& view,
                                          RenderedCache& cache);

}  // namespace pettube::catalog
