#include "services/transcode-worker/hls_stats.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pettube::transcode {

int64_t PeakSegmentBitrate(absl::string_view playlist) {
  int64_t peak = 0;
  double duration = 0;
  for (absl::string_view line : absl::StrSplit(playlist, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "#EXTINF:")) {
      std::vector<absl::string_view> parts = absl::StrSplit(line, ',');
      if (parts.empty() || !absl::SimpleAtod(parts[0], &duration)) duration = 0;
    } else if (absl::ConsumePrefix(&line, "#EXT-X-BYTERANGE:")) {
      std::vector<absl::string_view> parts = absl::StrSplit(line, '@');
      int64_t bytes = 0;
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &bytes) && duration > 0) {
        peak = std::max(peak, static_cast<int64_t>(std::llround(bytes * 8 / duration)));
      }
      duration = 0;
    }
  }
  return peak;
}

}  // namespace pettube::transcode
