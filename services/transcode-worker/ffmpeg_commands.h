#pragma once

// The ffmpeg command lines a worker runs, as argument vectors (never a
// shell string). Pure functions, thread-safe.
//
//   encode:  source (HTTP, bearer header) -> progressive MP4, H.264 High +
//            AAC, keyframes every HLS segment, +faststart
//   hls:     that MP4 -> HLS fMP4 single-file variant (stream copy)
//   poster:  one frame of the source -> JPEG
//   probe:   ffprobe JSON of an output

#include <string>
#include <vector>

#include "proto/pettube/events/v1/events.pb.h"

namespace pettube::transcode {

struct FfmpegPaths {
  std::string ffmpeg = "/usr/bin/ffmpeg";
  std::string ffprobe = "/usr/bin/ffprobe";
  // libx264 preset.
  std::string x264_preset = "veryfast";
};

// `auth_header` is "Authorization: Bearer T\r\n" or empty.
std::vector<std::string> EncodeCommand(const FfmpegPaths& paths, const std::string& input_url,
                                       const std::string& auth_header,
                                       const pettube::events::v1::RenditionSpec& spec,
                                       const std::string& output_mp4);

// Writes `playlist` (its directory also gets `media_file`, which the
// playlist names relatively).
std::vector<std::string> HlsCommand(const FfmpegPaths& paths, const std::string& input_mp4,
                                    int segment_seconds, const std::string& media_file,
                                    const std::string& playlist);

std::vector<std::string> PosterCommand(const FfmpegPaths& paths, const std::string& input_url,
                                       const std::string& auth_header,
                                       const pettube::events::v1::RenditionSpec& spec,
                                       const std::string& output_jpg);

std::vector<std::string> ProbeCommand(const FfmpegPaths& paths, const std::string& file);

}  // namespace pettube::transcode
