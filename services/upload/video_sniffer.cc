#include "services/upload/video_sniffer.h"

#include "absl/strings/match.h"

namespace pettube::upload {
namespace {

bool At(absl::string_view head, size_t offset, absl::string_view magic) {
  return head.size() >= offset + magic.size() && head.substr(offset, magic.size()) == magic;
}

}  // namespace

std::optional<std::string> SniffVideoContainer(absl::string_view head) {
  // ISO BMFF (MP4, MOV, 3GP, M4V): a box type at offset 4. QuickTime files
  // may open with moov, mdat, free, skip or wide instead of ftyp.
  for (absl::string_view box : {"ftyp", "moov", "mdat", "free", "skip", "wide"}) {
    if (At(head, 4, box)) return "mp4";
  }
  if (At(head, 0, "\x1A\x45\xDF\xA3")) return "matroska";  // also WebM
  if (At(head, 0, "RIFF") && At(head, 8, "AVI ")) return "avi";
  if (head.size() > 188 && head[0] == 0x47 && head[188] == 0x47) return "mpegts";
  if (At(head, 0, absl::string_view("\x00\x00\x01\xBA", 4))) return "mpegps";
  if (At(head, 0, "FLV\x01")) return "flv";
  if (At(head, 0, "OggS")) return "ogg";
  if (At(head, 0, "\x30\x26\xB2\x75\x8E\x66\xCF\x11")) return "asf";
  return std::nullopt;
}

}  // namespace pettube::upload
