#include "services/transcode-coordinator/probe.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/time/proto_time.h"
#include "nlohmann/json.hpp"
#include "services/transcode-coordinator/failure.h"

namespace pettube::transcode {
namespace {

using ::pettube::events::v1::FailureReason;
using ::pettube::events::v1::SourceInfo;
using json = nlohmann::json;

// A string or number field as a double; ffprobe prints most numbers as
// strings ("2.000000").
double NumberField(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end()) return 0;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    double value = 0;
    if (absl::SimpleAtod(it->get<std::string>(), &value) && std::isfinite(value)) return value;
  }
  return 0;
}

std::string StringField(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// "30000/1001" -> 29.97; "0/0" -> 0.
double ParseRate(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  double num = 0, den = 1;
  if (parts.empty() || !absl::SimpleAtod(parts[0], &num)) return 0;
  if (parts.size() > 1 && !absl::SimpleAtod(parts[1], &den)) return 0;
  if (den == 0 || !std::isfinite(num / den) || num / den < 0) return 0;
  return num / den;
}

// Display rotation in degrees, normalized to 0, 90, 180 or 270: the
// display matrix side data (ffmpeg 5), else the legacy "rotate" tag.
int Rotation(const json& stream) {
  double degrees = 0;
  bool found = false;
  if (auto it = stream.find("side_data_list"); it != stream.end() && it->is_array()) {
    for (const json& side : *it) {
      if (side.is_object() && side.contains("rotation")) {
        degrees = NumberField(side, "rotation");
        found = true;
        break;
      }
    }
  }
  if (!found) {
    if (auto tags = stream.find("tags"); tags != stream.end() && tags->is_object()) {
      degrees = NumberField(*tags, "rotate");
    }
  }
  long quarter = std::lround(degrees / 90.0) % 4;
  if (quarter < 0) quarter += 4;
  return static_cast<int>(quarter * 90);
}

bool IsCoverArt(const json& stream) {
  auto it = stream.find("disposition");
  return it != stream.end() && it->is_object() && it->value("attached_pic", 0) == 1;
}

}  // namespace

absl::StatusOr<SourceInfo> ParseProbeJson(absl::string_view text, const SourceLimits& limits) {
  json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return SourceFailure(events::v1::SOURCE_CORRUPT,
                         "source: ffprobe output is not JSON; the file is not a media container");
  }
  const json format = doc.value("format", json::object());
  const json streams = doc.value("streams", json::array());
  if (!format.is_object() || StringField(format, "format_name").empty()) {
    return SourceFailure(events::v1::SOURCE_CORRUPT,
                         "source: not a media container ffprobe recognises (corrupt or truncated)");
  }
  const json* video = nullptr;
  const json* audio = nullptr;
  if (streams.is_array()) {
    for (const json& stream : streams) {
      if (!stream.is_object()) continue;
      const std::string type = StringField(stream, "codec_type");
      if (type == "video" && video == nullptr && !IsCoverArt(stream)) video = &stream;
      if (type == "audio" && audio == nullptr) audio = &stream;
    }
  }
  if (video == nullptr) {
    return SourceFailure(events::v1::NO_VIDEO_STREAM,
                         audio != nullptr ? "source: has no video stream (audio only)"
                                          : "source: has no video stream");
  }
  SourceInfo info;
  info.set_container(StringField(format, "format_name"));
  info.set_video_codec(StringField(*video, "codec_name"));
  if (info.video_codec().empty() || info.video_codec() == "none") {
    return SourceFailure(
        events::v1::UNSUPPORTED_SOURCE,
        absl::StrCat("source: video codec \"", StringField(*video, "codec_tag_string"),
                     "\" is not supported"));
  }
  info.set_video_profile(StringField(*video, "profile"));
  info.set_pixel_format(StringField(*video, "pix_fmt"));
  info.set_width(static_cast<int>(NumberField(*video, "width")));
  info.set_height(static_cast<int>(NumberField(*video, "height")));
  for (int d : {info.width(), info.height()}) {
    if (d < limits.min_dimension || d > limits.max_dimension) {
      return SourceFailure(
          events::v1::SOURCE_OUT_OF_RANGE,
          absl::StrCat("source: resolution ", info.width(), "x", info.height(),
                       " is outside the accepted range (each side ", limits.min_dimension, " to ",
                       limits.max_dimension, " pixels)"));
    }
  }
  info.set_rotation(Rotation(*video));
  const bool swap = info.rotation() == 90 || info.rotation() == 270;
  info.set_display_width(swap ? info.height() : info.width());
  info.set_display_height(swap ? info.width() : info.height());
  double rate = ParseRate(StringField(*video, "avg_frame_rate"));
  if (rate <= 0 || rate > 1000) rate = ParseRate(StringField(*video, "r_frame_rate"));
  if (rate > 1000) rate = 0;
  info.set_frame_rate(rate);
  info.set_video_bitrate_kbps(static_cast<int>(NumberField(*video, "bit_rate") / 1000));

  double duration = NumberField(format, "duration");
  if (duration <= 0) duration = NumberField(*video, "duration");
  if (!(duration > 0)) {
    return SourceFailure(events::v1::SOURCE_OUT_OF_RANGE,
                         "source: duration is missing or zero (a still image or a broken file?)");
  }
  if (duration > limits.max_duration_seconds) {
    return SourceFailure(events::v1::SOURCE_OUT_OF_RANGE,
                         absl::StrCat("source: duration ", duration, " s is over the limit of ",
                                      limits.max_duration_seconds, " s"));
  }
  *info.mutable_duration() = time::ToProto(absl::Seconds(duration));
  info.set_size_bytes(static_cast<int64_t>(NumberField(format, "size")));
  if (audio != nullptr) {
    info.set_has_audio(true);
    info.set_audio_codec(StringField(*audio, "codec_name"));
    info.set_audio_bitrate_kbps(static_cast<int>(NumberField(*audio, "bit_rate") / 1000));
    info.set_audio_channels(static_cast<int>(NumberField(*audio, "channels")));
    info.set_audio_sample_rate(static_cast<int>(NumberField(*audio, "sample_rate")));
  }
  return info;
}

std::string LastLine(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, absl::ByAnyChar("\r\n"));
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    absl::string_view line = absl::StripAsciiWhitespace(*it);
    if (!line.empty()) return std::string(line);
  }
  return "";
}

absl::Status ClassifyProbeFailure(absl::string_view what, int exit_code,
                                  absl::string_view stderr_text) {
  std::string line = LastLine(stderr_text);
  if (line.empty()) line = absl::StrCat("exited with status ", exit_code);
  const std::string message = absl::StrCat(what, ": ", line);
  const std::string lower = absl::AsciiStrToLower(stderr_text);
  if (absl::StrContains(lower, "404 not found")) {
    return SourceFailure(events::v1::SOURCE_UNREADABLE, message);
  }
  if (absl::StrContains(lower, "connection refused") || absl::StrContains(lower, "timed out") ||
      absl::StrContains(lower, "server returned 5") ||
      absl::StrContains(lower, "401 unauthorized") || absl::StrContains(lower, "403 forbidden") ||
      absl::StrContains(lower, "connection reset") ||
      absl::StrContains(lower, "network is unreachable") ||
      absl::StrContains(lower, "failed to resolve")) {
    return WithFailureReason(absl::UnavailableError(message), events::v1::SOURCE_UNREADABLE);
  }
  if (absl::StrContains(lower, "invalid data found") || absl::StrContains(lower, "moov atom") ||
      absl::StrContains(lower, "end of file")) {
    return SourceFailure(events::v1::SOURCE_CORRUPT, message);
  }
  return SourceFailure(events::v1::UNSUPPORTED_SOURCE, message);
}

}  // namespace pettube::transcode
