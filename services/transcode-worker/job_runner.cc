#include "services/transcode-worker/job_runner.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"
#include "libs/time/proto_time.h"
#include "nlohmann/json.hpp"
#include "services/transcode-coordinator/failure.h"
#include "services/transcode-coordinator/ffprobe_prober.h"
#include "services/transcode-coordinator/master_playlist.h"
#include "services/transcode-coordinator/probe.h"
#include "services/transcode-worker/hls_stats.h"

namespace pettube::transcode {
namespace {

namespace ev = ::pettube::events::v1;
namespace fs = std::filesystem;
using json = nlohmann::json;

// A private directory removed with everything in it when this goes away.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Create(const std::string& parent) {
    std::string pattern = (fs::path(parent) / "job-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("mkdtemp in ", parent, ": ", strerror(errno)));
    }
    return TempDir(pattern);
  }
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

double Num(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->is_number()) return it->get<double>();
  double value = 0;
  if (it->is_string() && absl::SimpleAtod(it->get<std::string>(), &value)) return value;
  return 0;
}

std::string Str(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InternalError(absl::StrCat("read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void CancelToken::Cancel(absl::string_view why) {
  absl::MutexLock lock(&mu_);
  if (cancelled_) return;
  cancelled_ = true;
  reason_ = std::string(why);
  if (process_ != nullptr) process_->Cancel();
}

bool CancelToken::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

std::string CancelToken::reason() const {
  absl::MutexLock lock(&mu_);
  return reason_;
}

bool CancelToken::Attach(Subprocess* process) {
  absl::MutexLock lock(&mu_);
  process_ = process;
  if (cancelled_ && process != nullptr) {
    process->Cancel();
    return false;
  }
  return true;
}

JobRunner::JobRunner(Options options, ObjectWriter& objects,
                     std::shared_ptr<auth::TokenSource> read_tokens)
    : options_(std::move(options)), objects_(objects), read_tokens_(std::move(read_tokens)) {}

absl::Status JobRunner::SweepScratch() {
  std::error_code ec;
  fs::create_directories(options_.scratch_dir, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("scratch_dir ", options_.scratch_dir, ": ", ec.message()));
  int removed = 0;
  for (const auto& entry : fs::directory_iterator(options_.scratch_dir, ec)) {
    std::error_code rm;
    fs::remove_all(entry.path(), rm);
    ++removed;
  }
  if (ec)
    return absl::InternalError(
        absl::StrCat("scratch_dir ", options_.scratch_dir, ": ", ec.message()));
  if (removed > 0)
    log::Info("worker.scratch_swept", {{"dir", options_.scratch_dir}, {"entries", removed}});
  return absl::OkStatus();
}

absl::Status JobRunner::RunCommand(const std::string& what, std::vector<std::string> argv,
                                   absl::Time deadline, CancelToken& cancel,
                                   const std::function<void(absl::string_view)>& on_line,
                                   std::string* stdout_text) {
  Subprocess::Options o;
  o.argv = std::move(argv);
  o.timeout = std::max(deadline - absl::Now(), absl::Milliseconds(1));
  o.on_stdout_line = on_line;
  auto process = Subprocess::Start(std::move(o));
  if (!process.ok()) return process.status();
  cancel.Attach(process->get());
  Subprocess::Result r = (*process)->Wait();
  cancel.Attach(nullptr);
  if (r.cancelled || cancel.cancelled()) {
    return absl::CancelledError(absl::StrCat(what, ": cancelled (", cancel.reason(), ")"));
  }
  if (r.timed_out) {
    return WithFailureReason(
        absl::DeadlineExceededError(absl::StrCat(what, ": killed at the job's time limit")),
        ev::JOB_TIMEOUT);
  }
  if (!r.ok()) {
    absl::Status s = ClassifyProbeFailure(what, r.exit_code, r.stderr_tail);
    // A network error reading the source stays retryable; anything else
    // is ffmpeg failing on this rendition.
    if (s.code() == absl::StatusCode::kUnavailable) return s;
    return WithFailureReason(absl::AbortedError(s.message()), ev::TRANSCODE_FAILED);
  }
  if (stdout_text != nullptr) *stdout_text = std::move(r.stdout_text);
  return absl::OkStatus();
}

absl::StatusOr<ev::TranscodeJobCompleted> JobRunner::Run(const ev::TranscodeJobRequested& job,
                                                         int attempt, CancelToken& cancel,
                                                         const ProgressFn& progress) {
  const absl::Time start = absl::Now();
  const absl::Duration timeout =
      job.has_timeout() ? time::FromProto(job.timeout()) : absl::Hours(1);
  const absl::Time deadline = start + (timeout > absl::ZeroDuration() ? timeout : absl::Hours(1));
  const ev::RenditionSpec& spec = job.rendition();
  const std::string input = options_.source_url ? options_.source_url(job.source())
                                                : ObjectUrl(options_.objects_url, job.source());
  std::string auth_header;
  if (read_tokens_ != nullptr) {
    auto token = read_tokens_->Token();
    if (!token.ok()) {
      return WithFailureReason(
          absl::UnavailableError(absl::StrCat("no objects.read token: ", token.status().message())),
          ev::SOURCE_UNREADABLE);
    }
    auth_header = absl::StrCat("Authorization: Bearer ", *token, "\r\n");
  }
  auto dir = TempDir::Create(options_.scratch_dir);
  if (!dir.ok()) return dir.status();
  const absl::Duration total = time::FromProto(job.source_info().duration());

  ev::TranscodeJobCompleted done;
  done.set_job(job.job());
  done.set_media(job.media());
  done.set_worker(options_.worker);
  done.set_generation(job.generation());
  done.set_attempt(attempt);
  *done.mutable_rendition() = spec;
  const std::string what = absl::StrCat("ffmpeg ", spec.name());

  if (spec.kind() == ev::POSTER) {
    const std::string jpg = dir->path() + "/poster.jpg";
    if (auto s = RunCommand(what, PosterCommand(options_.paths, input, auth_header, spec, jpg),
                            deadline, cancel, nullptr, nullptr);
        !s.ok()) {
      return s;
    }
    if (cancel.cancelled()) return absl::CancelledError(cancel.reason());
    auto ref = objects_.PutFile("renditions", job.output_key(), "image/jpeg", jpg);
    if (!ref.ok()) return WithFailureReason(ref.status(), ev::OUTPUT_WRITE_FAILED);
    *done.mutable_output() = *ref;
    if (progress) progress(ProgressUpdate{absl::ZeroDuration(), 0, true}, 1.0);
    *done.mutable_elapsed() = time::ToProto(absl::Now() - start);
    return done;
  }

  // 1. Encode the progressive MP4, reporting progress.
  const std::string mp4 = dir->path() + "/" + spec.name() + ".mp4";
  ProgressParser parser;
  ProgressThrottle throttle(options_.progress_interval);
  auto on_line = [&](absl::string_view line) {
    std::optional<ProgressUpdate> u = parser.Feed(line);
    if (!u.has_value() || !progress) return;
    if (throttle.Allow(absl::Now(), u->end)) progress(*u, Fraction(u->out_time, total));
  };
  if (auto s = RunCommand(what, EncodeCommand(options_.paths, input, auth_header, spec, mp4),
                          deadline, cancel, on_line, nullptr);
      !s.ok()) {
    return s;
  }
  // 2. The HLS variant from it (stream copy, seconds).
  const std::string hls_dir = dir->path() + "/hls";
  fs::create_directories(hls_dir);
  const std::string hls_media = hls_dir + "/" + spec.name() + ".mp4";
  const std::string playlist = hls_dir + "/" + spec.name() + ".m3u8";
  if (auto s = RunCommand(
          absl::StrCat("ffmpeg hls ", spec.name()),
          HlsCommand(options_.paths, mp4, spec.hls_segment_seconds(), hls_media, playlist),
          deadline, cancel, nullptr, nullptr);
      !s.ok()) {
    return s;
  }
  // 3. What came out.
  std::string probe_json;
  if (auto s = RunCommand(absl::StrCat("ffprobe ", spec.name()), ProbeCommand(options_.paths, mp4),
                          deadline, cancel, nullptr, &probe_json);
      !s.ok()) {
    return s;
  }
  json doc = json::parse(probe_json, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return WithFailureReason(absl::InternalError("ffprobe of the output: not JSON"),
                             ev::TRANSCODE_FAILED);
  }
  const json format = doc.value("format", json::object());
  std::string video_profile, audio_profile;
  int level = 0;
  for (const json& stream : doc.value("streams", json::array())) {
    if (Str(stream, "codec_type") == "video") {
      done.mutable_rendition()->set_width(static_cast<int>(Num(stream, "width")));
      done.mutable_rendition()->set_height(static_cast<int>(Num(stream, "height")));
      done.mutable_rendition()->set_video_bitrate_kbps(
          static_cast<int>(Num(stream, "bit_rate") / 1000));
      done.mutable_rendition()->set_video_codec(Str(stream, "codec_name"));
      video_profile = Str(stream, "profile");
      level = static_cast<int>(Num(stream, "level"));
      const std::string rate = Str(stream, "avg_frame_rate");
      const size_t slash = rate.find('/');
      if (slash != std::string::npos) {
        const double num = std::atof(rate.substr(0, slash).c_str());
        const double den = std::atof(rate.substr(slash + 1).c_str());
        if (den > 0) done.set_frame_rate(num / den);
      }
    } else if (Str(stream, "codec_type") == "audio") {
      done.mutable_rendition()->set_audio_bitrate_kbps(
          static_cast<int>(Num(stream, "bit_rate") / 1000));
      done.mutable_rendition()->set_audio_codec(Str(stream, "codec_name"));
      audio_profile = Str(stream, "profile");
      if (audio_profile.empty()) audio_profile = "LC";
    }
  }
  if (done.rendition().video_codec().empty()) {
    return WithFailureReason(absl::AbortedError(absl::StrCat(what, ": output has no video stream")),
                             ev::TRANSCODE_FAILED);
  }
  done.mutable_rendition()->set_video_profile(video_profile);
  done.set_codecs(Rfc6381Codecs(video_profile, level, audio_profile));
  done.set_bitrate_bps(static_cast<int64_t>(Num(format, "bit_rate")));
  *done.mutable_duration() = time::ToProto(absl::Seconds(Num(format, "duration")));
  auto playlist_text = ReadText(playlist);
  if (!playlist_text.ok()) return playlist_text.status();
  done.set_peak_bitrate_bps(PeakSegmentBitrate(*playlist_text));

  // 4. Store: the HLS media file before the playlist naming it, the
  // progressive MP4 last. Not if cancelled meanwhile (e.g. another worker
  // finished the job first): its output is discarded.
  if (cancel.cancelled()) return absl::CancelledError(cancel.reason());
  auto media_ref = objects_.PutFile("renditions", job.hls_media_key(), "video/mp4", hls_media);
  if (!media_ref.ok()) return WithFailureReason(media_ref.status(), ev::OUTPUT_WRITE_FAILED);
  auto playlist_ref = objects_.PutBytes("renditions", job.hls_playlist_key(),
                                        "application/vnd.apple.mpegurl", *playlist_text);
  if (!playlist_ref.ok()) return WithFailureReason(playlist_ref.status(), ev::OUTPUT_WRITE_FAILED);
  if (cancel.cancelled()) return absl::CancelledError(cancel.reason());
  auto mp4_ref = objects_.PutFile("renditions", job.output_key(), "video/mp4", mp4);
  if (!mp4_ref.ok()) return WithFailureReason(mp4_ref.status(), ev::OUTPUT_WRITE_FAILED);
  *done.mutable_output() = *mp4_ref;
  *done.mutable_hls_media() = *media_ref;
  *done.mutable_hls_playlist() = *playlist_ref;
  *done.mutable_elapsed() = time::ToProto(absl::Now() - start);
  return done;
}

}  // namespace pettube::transcode
