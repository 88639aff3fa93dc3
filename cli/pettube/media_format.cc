#include "cli/pettube/media_format.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/pettube/progress.h"
#include "google/protobuf/util/json_util.h"
#include "libs/time/proto_time.h"

namespace pettube::cli {

using catalog::v1::Media;
using catalog::v1::Rendition;

absl::StatusOr<std::string> MediaName(const std::string& arg) {
  std::string id = arg;
  if (absl::StartsWith(id, "media/")) id = id.substr(6);
  const bool valid =
      !id.empty() && id.size() <= 128 && id != "." && id != ".." &&
      std::all_of(id.begin(), id.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
               c == '-';
      });
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "NAME: must be media/ID or ID with ID of [A-Za-z0-9._-]{1,128}, got \"", arg, "\""));
  }
  return absl::StrCat("media/", id);
}

std::string StateName(catalog::v1::MediaState state) {
  std::string name = catalog::v1::MediaState_Name(state);
  return name.empty() ? absl::StrCat("STATE_", static_cast<int>(state)) : name;
}

namespace {

std::string Clip(const std::string& s, size_t width) {
  if (s.size() <= width) return s;
  return s.substr(0, width - 1) + "~";
}

std::string DurationOf(const Media& m) {
  if (!m.source().has_duration()) return "-";
  return FormatMediaDuration(time::FromProto(m.source().duration()));
}

std::string StateWithProgress(const Media& m) {
  std::string state = StateName(m.state());
  if (m.state() == catalog::v1::PROCESSING) {
    absl::StrAppend(&state, absl::StrFormat(" %d%%", static_cast<int>(m.progress() * 100)));
  }
  return state;
}

}  // namespace

std::string MediaTable(const std::vector<Media>& media, absl::Time now) {
  if (media.empty()) return "no media yet (upload one: pettube upload FILE)\n";
  std::string out = absl::StrFormat("%-28s %-30s %-15s %9s  %s\n", "NAME", "TITLE", "STATE",
                                    "DURATION", "AGE");
  for (const Media& m : media) {
    const std::string age =
        m.has_create_time() ? FormatAge(now - time::FromProto(m.create_time())) : "-";
    absl::StrAppend(&out, absl::StrFormat("%-28s %-30s %-15s %9s  %s\n", m.name(),
                                          Clip(m.title(), 30), StateWithProgress(m),
                                          DurationOf(m), age));
  }
  return out;
}

std::string MediaDetails(const Media& m, absl::Time now) {
  std::string out = absl::StrCat(m.name(), "  \"", m.title(), "\"\n");
  absl::StrAppend(&out, "  state:    ", StateWithProgress(m), "\n");
  if (!m.error().empty()) absl::StrAppend(&out, "  error:    ", m.error(), "\n");
  absl::StrAppend(&out, "  owner:    ", m.owner(), "\n");
  absl::StrAppend(&out, "  visibility: ", catalog::v1::Visibility_Name(m.visibility()), "\n");
  if (m.has_create_time()) {
    absl::StrAppend(&out, "  uploaded: ", FormatAge(now - time::FromProto(m.create_time())), "\n");
  }
  if (m.has_source()) {
    const auto& s = m.source();
    absl::StrAppend(&out, "  source:   ", FormatBytes(s.size_bytes()));
    if (s.width() > 0) absl::StrAppend(&out, ", ", s.width(), "x", s.height());
    if (s.has_duration()) absl::StrAppend(&out, ", ", DurationOf(m));
    if (!s.video_codec().empty()) absl::StrAppend(&out, ", ", s.video_codec());
    if (!s.audio_codec().empty()) absl::StrAppend(&out, "/", s.audio_codec());
    absl::StrAppend(&out, "\n");
  }
  if (m.renditions_size() > 0 || m.has_poster()) {
    absl::StrAppend(&out, "  renditions:\n");
    auto row = [&](const Rendition& r) {
      absl::StrAppend(&out, absl::StrFormat("    %-8s %5dx%-5d %6s kbit/s %11s  %s\n", r.name(),
                                            r.width(), r.height(),
                                            r.bitrate_kbps() > 0 ? absl::StrCat(r.bitrate_kbps())
                                                                 : std::string("-"),
                                            FormatBytes(r.size_bytes()), r.url()));
      if (!r.hls_playlist_url().empty()) {
        absl::StrAppend(&out, "             hls: ", r.hls_playlist_url(), "\n");
      }
    };
    for (const Rendition& r : m.renditions()) row(r);
    if (m.has_poster()) row(m.poster());
  }
  if (!m.hls_master_url().empty()) absl::StrAppend(&out, "  hls:      ", m.hls_master_url(), "\n");
  if (m.has_url_expire_time()) {
    absl::StrAppend(&out, "  URLs expire in ",
                    FormatEta(time::FromProto(m.url_expire_time()) - now, true), "\n");
  }
  return out;
}

std::string WatchLine(const Media& m) {
  std::string line = absl::StrCat(m.name(), "  ", StateWithProgress(m));
  if (m.state() == catalog::v1::READY) {
    std::vector<std::string> names;
    for (const Rendition& r : m.renditions()) names.push_back(r.name());
    absl::StrAppend(&line, "  renditions: ", absl::StrJoin(names, " "));
  }
  if (m.state() == catalog::v1::FAILED) absl::StrAppend(&line, "  error: ", m.error());
  return line;
}

namespace {
std::string Available(const Media& m) {
  std::vector<std::string> names;
  for (const Rendition& r : m.renditions()) names.push_back(r.name());
  if (m.has_poster()) names.push_back(m.poster().name().empty() ? "poster" : m.poster().name());
  if (!m.hls_master_url().empty()) names.push_back("hls");
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}
}  // namespace

absl::StatusOr<Rendition> PickRendition(const Media& m, const std::string& rendition) {
  if (rendition == "hls") {
    return absl::InvalidArgumentError(
        "--rendition=hls: a playlist is not one file; download a rendition (e.g. 720p) or play "
        "the playlist URL (pettube play-url NAME --rendition=hls)");
  }
  if (rendition.empty()) {
    if (m.renditions_size() == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          m.name(), " has no renditions yet (state ", StateName(m.state()), ")"));
    }
    return m.renditions(0);  // Largest first.
  }
  for (const Rendition& r : m.renditions()) {
    if (r.name() == rendition) return r;
  }
  if (m.has_poster() && (rendition == "poster" || rendition == m.poster().name())) {
    return m.poster();
  }
  return absl::NotFoundError(absl::StrCat("--rendition=", rendition, ": ", m.name(),
                                          " has no such rendition (available: ", Available(m),
                                          ")"));
}

absl::StatusOr<std::string> PlayUrl(const Media& m, const std::string& rendition) {
  if (rendition == "hls") {
    if (m.hls_master_url().empty()) {
      return absl::NotFoundError(absl::StrCat(m.name(), " has no HLS playlist (state ",
                                              StateName(m.state()), "; available: ", Available(m),
                                              ")"));
    }
    return m.hls_master_url();
  }
  auto r = PickRendition(m, rendition);
  if (!r.ok()) return r.status();
  if (r->url().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(m.name(), ": rendition ", r->name(),
                                                      " has no URL yet"));
  }
  return r->url();
}

std::string MediaJson(const Media& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.always_print_enums_as_ints = false;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

}  // namespace pettube::cli
