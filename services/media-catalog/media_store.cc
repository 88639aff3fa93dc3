#include "services/media-catalog/media_store.h"

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "libs/time/proto_time.h"

namespace pettube::catalog {
namespace {

// 8 bytes, big-endian, of (max - micros): byte order is newest first.
std::string InvertedTime(const google::protobuf::Timestamp& ts) {
  int64_t micros = absl::ToUnixMicros(time::FromProto(ts));
  if (micros < 0) micros = 0;
  const uint64_t inverted = std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(micros);
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((inverted >> (56 - 8 * i)) & 0xff);
  return out;
}

}  // namespace

absl::StatusOr<StoredMedia> MediaStore::Get(absl::string_view media_id) {
  StoredMedia media;
  if (absl::Status s = Read(media_id, &media); !s.ok()) return s;
  return media;
}

std::string EventKey(absl::string_view source, absl::string_view id) {
  return absl::StrCat(source, "\n", id);
}

std::string OwnerIndexPrefix(absl::string_view owner) {
  return absl::StrCat(owner, absl::string_view("\0", 1));
}

std::string OwnerIndexKey(const StoredMedia& media) {
  return absl::StrCat(OwnerIndexPrefix(media.owner()), InvertedTime(media.create_time()),
                      media.media_id());
}

std::string PublicIndexKey(const StoredMedia& media) {
  return absl::StrCat(InvertedTime(media.create_time()), media.media_id());
}

bool IsListed(const StoredMedia& media) {
  return media.uploaded() && !media.deleted() && !media.owner().empty();
}

bool IsPublicListed(const StoredMedia& media) {
  return IsListed(media) && media.visibility() == v1::PUBLIC;
}

}  // namespace pettube::catalog
