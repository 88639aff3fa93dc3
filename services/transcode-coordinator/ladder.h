#pragma once

// Rendition ladders: which outputs a source gets. A preset names a target
// short side (the "p" of 720p: the height of a landscape output, the width
// of a portrait one) and bitrates; PlanLadder keeps the presets a source can
// fill without upscaling, sizes each to the source's display aspect ratio
// (rotation applied) with even dimensions, and adds the poster. Pure
// functions, thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/pettube/events/v1/events.pb.h"

namespace pettube::transcode {

// One rung of the ladder.
struct Preset {
  std::string name;    // "720p"
  int short_side = 0;  // 720
  int video_kbps = 0;  // H.264 High target bitrate
  int audio_kbps = 0;  // AAC bitrate
};

// 1080p 5000/192, 720p 2800/128, 480p 1400/128, 360p 800/96 (kbit/s),
// H.264 High + AAC.
std::vector<Preset> DefaultPresets();

// Parses a --presets flag: "NAME:SHORT_SIDE:VIDEO_KBPS:AUDIO_KBPS" entries
// separated by commas, e.g. "720p:720:2800:128,360p:360:800:96".
// INVALID_ARGUMENT naming the entry and the rule (name [a-z0-9]+, short side
// 16-4320 and even, bitrates 50-100000 / 16-512, names unique, not
// "poster" or "master").
absl::StatusOr<std::vector<Preset>> ParsePresets(absl::string_view text);

struct LadderOptions {
  // Seconds per HLS segment; the keyframe interval follows it.
  int hls_segment_seconds = 4;
  // Frame rate cap.
  double max_frame_rate = 60;
  // Longest side of the poster.
  int poster_long_side = 1280;
};

// The renditions for `source`, largest first, then the poster. A source
// smaller than the smallest preset gets one rendition at its own (even)
// size, named "{short side}p", with the smallest preset's bitrate scaled
// down by area. Every video rendition: format "mp4/h264/aac" (or
// "mp4/h264" without audio), H.264 High, AAC only when the source has audio.
// INVALID_ARGUMENT for an empty preset list or a source without display
// dimensions.
absl::StatusOr<std::vector<pettube::events::v1::RenditionSpec>> PlanLadder(
    const pettube::events::v1::SourceInfo& source, const std::vector<Preset>& presets,
    const LadderOptions& options = {});

}  // namespace pettube::transcode
