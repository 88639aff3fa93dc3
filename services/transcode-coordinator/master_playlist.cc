#include "services/transcode-coordinator/master_playlist.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pettube::transcode {

std::string Rfc6381Codecs(absl::string_view profile, int level, absl::string_view aac_profile) {
  const std::string p = absl::AsciiStrToLower(profile);
  // profile_idc and constraint flags (ISO/IEC 14496-10 A.2).
  int idc = 0x64, constraints = 0x00;
  if (p == "baseline") {
    idc = 0x42;
  } else if (p == "constrained baseline") {
    idc = 0x42;
    constraints = 0xe0;
  } else if (p == "main") {
    idc = 0x4d;
  } else if (p == "high 10") {
    idc = 0x6e;
  }
  if (level <= 0 || level > 255) level = 40;
  std::string codecs = absl::StrFormat("avc1.%02x%02x%02x", idc, constraints, level);
  if (!aac_profile.empty()) {
    const std::string a = absl::AsciiStrToLower(aac_profile);
    absl::StrAppend(&codecs, a == "he-aac" ? ",mp4a.40.5" : ",mp4a.40.2");
  }
  return codecs;
}

std::string MasterPlaylist(
    const std::vector<pettube::events::v1::TranscodeJobCompleted>& completed) {
  std::vector<const pettube::events::v1::TranscodeJobCompleted*> variants;
  for (const auto& c : completed) {
    if (c.rendition().kind() == pettube::events::v1::VIDEO) variants.push_back(&c);
  }
  auto bandwidth = [](const pettube::events::v1::TranscodeJobCompleted* c) {
    return c->peak_bitrate_bps() > 0 ? c->peak_bitrate_bps() : c->bitrate_bps();
  };
  std::stable_sort(variants.begin(), variants.end(),
                   [&](auto* a, auto* b) { return bandwidth(a) > bandwidth(b); });
  std::string out = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n";
  for (const auto* v : variants) {
    absl::StrAppend(&out, "#EXT-X-STREAM-INF:BANDWIDTH=", std::max<int64_t>(bandwidth(v), 1));
    if (v->bitrate_bps() > 0) absl::StrAppend(&out, ",AVERAGE-BANDWIDTH=", v->bitrate_bps());
    absl::StrAppend(&out, ",RESOLUTION=", v->rendition().width(), "x", v->rendition().height());
    if (v->frame_rate() > 0)
      absl::StrAppend(&out, absl::StrFormat(",FRAME-RATE=%.3f", v->frame_rate()));
    if (!v->codecs().empty()) absl::StrAppend(&out, ",CODECS=\"", v->codecs(), "\"");
    absl::StrAppend(&out, "\n", v->rendition().name(), ".m3u8\n");
  }
  return out;
}

}  // namespace pettube::transcode
