#include "services/transcode-coordinator/ladder.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/time/proto_time.h"

namespace pettube::transcode {
namespace {

using ::pettube::events::v1::RenditionSpec;
using ::pettube::events::v1::SourceInfo;

// Nearest even number, at least 2.
int Even(double value) {
  int v = static_cast<int>(std::lround(value / 2.0)) * 2;
  return std::max(v, 2);
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c)) return false;
  }
  return true;
}

}  // namespace

std::vector<Preset> DefaultPresets() {
  return {{"1080p", 1080, 5000, 192},
          {"720p", 720, 2800, 128},
          {"480p", 480, 1400, 128},
          {"360p", 360, 800, 96}};
}

absl::StatusOr<std::vector<Preset>> ParsePresets(absl::string_view text) {
  std::vector<Preset> presets;
  absl::flat_hash_set<std::string> names;
  int index = 0;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    const std::string where = absl::StrCat("presets[", index++, "] \"", entry, "\"");
    std::vector<std::string> parts = absl::StrSplit(absl::StripAsciiWhitespace(entry), ':');
    if (parts.size() != 4) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": must be NAME:SHORT_SIDE:VIDEO_KBPS:AUDIO_KBPS"));
    }
    Preset p;
    p.name = parts[0];
    if (!ValidName(p.name) || p.name == "poster" || p.name == "master") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": name must be 1-32 of [a-z0-9], not poster or master"));
    }
    if (!names.insert(p.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": name is used twice"));
    }
    if (!absl::SimpleAtoi(parts[1], &p.short_side) || p.short_side < 16 || p.short_side > 4320 ||
        p.short_side % 2 != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": short side must be an even number from 16 to 4320"));
    }
    if (!absl::SimpleAtoi(parts[2], &p.video_kbps) || p.video_kbps < 50 || p.video_kbps > 100000) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": video bitrate must be 50 to 100000 kbit/s"));
    }
    if (!absl::SimpleAtoi(parts[3], &p.audio_kbps) || p.audio_kbps < 16 || p.audio_kbps > 512) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": audio bitrate must be 16 to 512 kbit/s"));
    }
    presets.push_back(std::move(p));
  }
  if (presets.empty()) return absl::InvalidArgumentError("presets: at least one preset is needed");
  return presets;
}

absl::StatusOr<std::vector<RenditionSpec>> PlanLadder(const SourceInfo& source,
                                                      const std::vector<Preset>& presets,
                                                      const LadderOptions& options) {
  if (presets.empty()) return absl::InvalidArgumentError("presets: empty");
  const int dw = source.display_width() > 0 ? source.display_width() : source.width();
  const int dh = source.display_height() > 0 ? source.display_height() : source.height();
  if (dw <= 0 || dh <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("source_info: display size ", dw, "x", dh, " must be positive"));
  }
  const bool portrait = dh > dw;
  const int source_short = std::min(dw, dh);
  const double aspect = static_cast<double>(std::max(dw, dh)) / source_short;

  std::vector<Preset> sorted = presets;
  std::sort(sorted.begin(), sorted.end(),
            [](const Preset& a, const Preset& b) { return a.short_side > b.short_side; });

  auto make = [&](const std::string& name, int short_side, int video_kbps, int audio_kbps) {
    RenditionSpec spec;
    spec.set_name(name);
    spec.set_kind(events::v1::VIDEO);
    const int s = Even(short_side);
    const int l = Even(short_side * aspect);
    spec.set_width(portrait ? s : l);
    spec.set_height(portrait ? l : s);
    spec.set_video_bitrate_kbps(video_kbps);
    spec.set_video_codec("h264");
    spec.set_video_profile("high");
    if (source.has_audio()) {
      spec.set_audio_bitrate_kbps(audio_kbps);
      spec.set_audio_codec("aac");
      spec.set_format("mp4/h264/aac");
    } else {
      spec.set_format("mp4/h264");
    }
    spec.set_max_frame_rate(options.max_frame_rate);
    spec.set_hls_segment_seconds(options.hls_segment_seconds);
    return spec;
  };

  std::vector<RenditionSpec> ladder;
  for (const Preset& p : sorted) {
    if (p.short_side <= source_short) {
      ladder.push_back(make(p.name, p.short_side, p.video_kbps, p.audio_kbps));
    }
  }
  if (ladder.empty()) {
    const Preset& smallest = sorted.back();
    const int s = Even(source_short) > source_short ? Even(source_short) - 2 : Even(source_short);
    const double area = static_cast<double>(s) * s /
                        (static_cast<double>(smallest.short_side) * smallest.short_side);
    const int kbps = std::max(100, static_cast<int>(std::lround(smallest.video_kbps * area)));
    ladder.push_back(make(absl::StrCat(s, "p"), s, kbps, smallest.audio_kbps));
  }

  RenditionSpec poster;
  poster.set_name("poster");
  poster.set_kind(events::v1::POSTER);
  poster.set_format("jpeg");
  const int top_long = std::max(ladder.front().width(), ladder.front().height());
  const int long_side = std::min(top_long, options.poster_long_side);
  const double scale = static_cast<double>(long_side) / top_long;
  poster.set_width(Even(ladder.front().width() * scale));
  poster.set_height(Even(ladder.front().height() * scale));
  // A tenth into the video, at most 3 s: past fades from black, early
  // enough for short clips.
  const absl::Duration duration = time::FromProto(source.duration());
  *poster.mutable_poster_offset() = time::ToProto(std::min(duration / 10, absl::Seconds(3)));
  ladder.push_back(std::move(poster));
  return ladder;
}

}  // namespace pettube::transcode
