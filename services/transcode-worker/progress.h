#pragma once

// ffmpeg's `-progress pipe:1` output: blocks of key=value lines, each ended
// by "progress=continue" (or "progress=end" at the end). ProgressParser
// turns lines into updates; ProgressThrottle lets through at most one
// update per interval (plus the last). Not thread-safe: one per ffmpeg run.

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace pettube::transcode {

struct ProgressUpdate {
  // Media time encoded so far.
  absl::Duration out_time;
  // Encoding speed relative to real time; 0 when unknown.
  double speed = 0;
  // "progress=end".
  bool end = false;
};

class ProgressParser {
 public:
  // Feeds one line; returns an update at the end of each block.
  std::optional<ProgressUpdate> Feed(absl::string_view line);

 private:
  ProgressUpdate current_;
};

class ProgressThrottle {
 public:
  explicit ProgressThrottle(absl::Duration interval) : interval_(interval) {}
  // True when an update at `now` should be reported: the first, the end,
  // and then one per interval.
  bool Allow(absl::Time now, bool end);

 private:
  absl::Duration interval_;
  absl::Time last_ = absl::InfinitePast();
};

// Fraction done of a `total` long media, clamped to [0, 1]; 0 for an
// unknown total.
double Fraction(absl::Duration out_time, absl::Duration total);

}  // namespace pettube::transcode
