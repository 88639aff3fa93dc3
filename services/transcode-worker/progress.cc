#include "services/transcode-worker/progress.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"

namespace pettube::transcode {

std::optional<ProgressUpdate> ProgressParser::Feed(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  const size_t eq = line.find('=');
  if (eq == absl::string_view::npos) return std::nullopt;
  const absl::string_view key = line.substr(0, eq);
  absl::string_view value = line.substr(eq + 1);
  if (key == "out_time_us" || key == "out_time_ms") {
    // Both are microseconds in ffmpeg 5 (out_time_ms is misnamed).
    int64_t us = 0;
    if (absl::SimpleAtoi(value, &us) && us >= 0) current_.out_time = absl::Microseconds(us);
  } else if (key == "speed") {
    double speed = 0;
    value = absl::StripSuffix(absl::StripAsciiWhitespace(value), "x");
    if (absl::SimpleAtod(value, &speed) && speed >= 0) current_.speed = speed;
  } else if (key == "progress") {
    ProgressUpdate update = current_;
    update.end = value == "end";
    return update;
  }
  return std::nullopt;
}

bool ProgressThrottle::Allow(absl::Time now, bool end) {
  if (end || now - last_ >= interval_) {
    last_ = now;
    return true;
  }
  return false;
}

double Fraction(absl::Duration out_time, absl::Duration total) {
  if (total <= absl::ZeroDuration()) return 0;
  return std::clamp(absl::FDivDuration(out_time, total), 0.0, 1.0);
}

}  // namespace pettube::transcode
