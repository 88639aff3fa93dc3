#include "services/media-catalog/rendered_cache_warmup.h"

#include <utility>

namespace pettube::catalog {

absl::StatusOr<int64_t> WarmRenderedCache(RocksDbMediaStore& store, const MediaView& view,
                                          RenderedCache& cache) {
  int64_t read = 0;
  absl::Status visited = store.ForEachRecordId([&](absl::string_view id) {
    const uint64_t ticket = cache.Ticket(id);
    StoredMedia media;
    absl::Status s = store.Read(id, &media);
    if (absl::IsNotFound(s)) return absl::OkStatus();
    if (!s.ok()) return s;
    ++read;
    if (auto rendered = view.Prerender(media)) cache.Fill(id, std::move(rendered), ticket);
    return absl::OkStatus();
  });
  if (!visited.ok()) return visited;
  return read;
}

}  // namespace pettube::catalog
