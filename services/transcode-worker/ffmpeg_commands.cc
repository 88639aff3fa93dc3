#include "services/transcode-worker/ffmpeg_commands.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "libs/time/proto_time.h"

namespace pettube::transcode {
namespace {

void AddInput(std::vector<std::string>& argv, const std::string& url,
              const std::string& auth_header) {
  if (!auth_header.empty()) {
    argv.push_back("-headers");
    argv.push_back(auth_header);
  }
  argv.push_back("-i");
  argv.push_back(url);
}

}  // namespace

std::vector<std::string> EncodeCommand(const FfmpegPaths& paths, const std::string& input_url,
                                       const std::string& auth_header,
                                       const pettube::events::v1::RenditionSpec& spec,
                                       const std::string& output_mp4) {
  std::vector<std::string> argv = {paths.ffmpeg, "-nostdin",  "-hide_banner", "-v", "error",
                                   "-nostats",   "-progress", "pipe:1",       "-y"};
  AddInput(argv, input_url, auth_header);
  const int segment = std::max(1, spec.hls_segment_seconds());
  const int video_kbps = std::max(1, spec.video_bitrate_kbps());
  argv.insert(argv.end(), {"-map", "0:v:0"});
  if (spec.audio_bitrate_kbps() > 0) argv.insert(argv.end(), {"-map", "0:a:0?"});
  argv.insert(argv.end(),
              {"-vf", absl::StrCat("scale=", spec.width(), ":", spec.height(), ",setsar=1")});
  if (spec.max_frame_rate() > 0) {
    argv.insert(argv.end(), {"-fpsmax", absl::StrFormat("%g", spec.max_frame_rate())});
  }
  argv.insert(
      argv.end(),
      {"-c:v", "libx264", "-preset", paths.x264_preset, "-profile:v",
       spec.video_profile().empty() ? "high" : spec.video_profile(), "-pix_fmt", "yuv420p", "-b:v",
       absl::StrCat(video_kbps, "k"), "-maxrate", absl::StrCat(video_kbps * 107 / 100, "k"),
       "-bufsize", absl::StrCat(video_kbps * 3 / 2, "k"),
       // A keyframe at every segment boundary, so HLS segments are
       // the length asked for.
       "-force_key_frames", absl::StrCat("expr:gte(t,n_forced*", segment, ")")});
  if (spec.audio_bitrate_kbps() > 0) {
    argv.insert(argv.end(), {"-c:a", "aac", "-b:a", absl::StrCat(spec.audio_bitrate_kbps(), "k")});
  } else {
    argv.push_back("-an");
  }
  argv.insert(argv.end(), {"-movflags", "+faststart", "-f", "mp4", output_mp4});
  return argv;
}

std::vector<std::string> HlsCommand(const FfmpegPaths& paths, const std::string& input_mp4,
                                    int segment_seconds, const std::string& media_file,
                                    const std::string& playlist) {
  return {paths.ffmpeg,
          "-nostdin",
          "-hide_banner",
          "-v",
          "error",
          "-y",
          "-i",
          input_mp4,
          "-map",
          "0",
          "-c",
          "copy",
          "-f",
          "hls",
          "-hls_segment_type",
          "fmp4",
          "-hls_flags",
          "single_file",
          "-hls_playlist_type",
          "vod",
          "-hls_time",
          absl::StrCat(std::max(1, segment_seconds)),
          "-hls_segment_filename",
          media_file,
          playlist};
}

std::vector<std::string> PosterCommand(const FfmpegPaths& paths, const std::string& input_url,
                                       const std::string& auth_header,
                                       const pettube::events::v1::RenditionSpec& spec,
                                       const std::string& output_jpg) {
  std::vector<std::string> argv = {paths.ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y"};
  const absl::Duration offset = time::FromProto(spec.poster_offset());
  if (offset > absl::ZeroDuration()) {
    argv.insert(argv.end(), {"-ss", absl::StrFormat("%.3f", absl::ToDoubleSeconds(offset))});
  }
  AddInput(argv, input_url, auth_header);
  argv.insert(argv.end(),
              {"-frames:v", "1", "-vf", absl::StrCat("scale=", spec.width(), ":", spec.height()),
               "-q:v", "3", "-f", "image2", "-update", "1", output_jpg});
  return argv;
}

std::vector<std::string> ProbeCommand(const FfmpegPaths& paths, const std::string& file) {
  return {paths.ffprobe, "-v",           "error",         "-print_format",
          "json",        "-show_format", "-show_streams", file};
}

}  // namespace pettube::transcode
