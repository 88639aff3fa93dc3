#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "proto/pettube/catalog/v1/catalog.pb.h"
#include "services/media-catalog/ticketed_cache.h"

namespace pettube::catalog {

// A record rendered once for many GetMedia calls: the Media's wire bytes,
// its URLs signed for a reference expiry, and where in the bytes the token
// and the expiry sit. MediaView::Stamp copies the bytes and writes a fresh
// token and expiry over them, so a read costs a copy and one HMAC instead
// of parsing the record, rendering it and serializing the response
// (docs/benchmarks.md, "Eighth pass on GetMedia"). Immutable once made.
struct RenderedMedia {
  // What deciding who may read it needs (Catalog::CanRead).
  std::string owner;
  v1::Visibility visibility = v1::VISIBILITY_UNSPECIFIED;
  bool listed = false;

  // The serialized v1::Media.
  std::string wire;
  // What its token covers, and the token's length (fixed for a prefix and
  // a ten-digit expiry). Unused when there is no token.
  std::string token_prefix;
  size_t token_size = 0;
  // Where each URL's token starts, and where each url_expire_time's
  // seconds (a five-byte varint) start.
  std::vector<uint32_t> token_offsets;
  std::vector<uint32_t> expiry_offsets;
};

// Charged per entry: its bytes, plus the table slot, the shared_ptr's
// control block and the strings' and vectors' headers.
struct RenderedCharge {
  size_t operator()(absl::string_view id, const std::shared_ptr<const RenderedMedia>& r) const {
    return id.size() + r->owner.size() + r->wire.size() + r->token_prefix.size() +
           4 * (r->token_offsets.size() + r->expiry_offsets.size()) + 240;
  }
};

// GetMedia's rendered records by media id, kept exact by the store
// (RocksDbMediaStore::Options::on_record_written erases a record's entry
// after each of its writes; readers fill through tickets).
using RenderedCache = TicketedCache<std::shared_ptr<const RenderedMedia>, RenderedCharge>;

}  // namespace pettube::catalog
