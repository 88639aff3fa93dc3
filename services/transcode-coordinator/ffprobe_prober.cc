#include "services/transcode-coordinator/ffprobe_prober.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/transcode-coordinator/failure.h"
#include "services/transcode-worker/subprocess.h"

namespace pettube::transcode {

std::string ObjectUrl(absl::string_view objects_url, const pettube::events::v1::ObjectRef& ref) {
  return absl::StrCat(absl::StripSuffix(objects_url, "/"), "/objects/", ref.store(), "/",
                      ref.key());
}

FfprobeProber::FfprobeProber(Options options, std::shared_ptr<auth::TokenSource> tokens)
    : options_(std::move(options)), tokens_(std::move(tokens)) {}

absl::StatusOr<pettube::events::v1::SourceInfo> FfprobeProber::Probe(
    const pettube::events::v1::ObjectRef& source) {
  Subprocess::Options o;
  o.argv = {options_.ffprobe, "-v",           "error",        "-print_format",
            "json",           "-show_format", "-show_streams"};
  if (tokens_ != nullptr) {
    auto token = tokens_->Token();
    if (!token.ok()) {
      return WithFailureReason(absl::UnavailableError(absl::StrCat("probe: no objects.read token: ",
                                                                   token.status().message())),
                               pettube::events::v1::SOURCE_UNREADABLE);
    }
    o.argv.push_back("-headers");
    o.argv.push_back(absl::StrCat("Authorization: Bearer ", *token, "\r\n"));
  }
  o.argv.push_back(ObjectUrl(options_.objects_url, source));
  o.timeout = options_.timeout;
  auto process = Subprocess::Start(std::move(o));
  if (!process.ok()) return process.status();
  Subprocess::Result r = (*process)->Wait();
  if (r.timed_out) {
    return WithFailureReason(
        absl::UnavailableError(absl::StrCat("probe: ffprobe did not finish within ",
                                            absl::FormatDuration(options_.timeout))),
        pettube::events::v1::SOURCE_UNREADABLE);
  }
  if (!r.ok()) return ClassifyProbeFailure("probe", r.exit_code, r.stderr_tail);
  return ParseProbeJson(r.stdout_text, options_.limits);
}

}  // namespace pettube::transcode
