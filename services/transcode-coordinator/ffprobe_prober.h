#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "libs/auth/credentials/token_source.h"
#include "services/transcode-coordinator/coordinator.h"
#include "services/transcode-coordinator/probe.h"

namespace pettube::transcode {

// SourceProber running the real ffprobe (no shell, clean environment) on
// the source's URL at the upload service's object listener,
// "{objects_url}/objects/{bucket}/{key}", with a bearer token holding
// objects.read. Thread-safe.
class FfprobeProber : public SourceProber {
 public:
  struct Options {
    // "http://HOST:PORT" of the upload service's object listener.
    std::string objects_url;
    std::string ffprobe = "/usr/bin/ffprobe";
    absl::Duration timeout = absl::Seconds(60);
    SourceLimits limits;
  };
  // `tokens` may be null (no Authorization header).
  FfprobeProber(Options options, std::shared_ptr<auth::TokenSource> tokens);

  absl::StatusOr<pettube::events::v1::SourceInfo> Probe(
      const pettube::events::v1::ObjectRef& source) override;

 private:
  const Options options_;
  std::shared_ptr<auth::TokenSource> tokens_;
};

// "{objects_url}/objects/{bucket}/{key}".
std::string ObjectUrl(absl::string_view objects_url, const pettube::events::v1::ObjectRef& ref);

}  // namespace pettube::transcode
