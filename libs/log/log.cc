#include "libs/log/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pettube::log {
namespace {

std::atomic<int> min_level{static_cast<int>(Level::kInfo)};

absl::Mutex service_mu;
std::string& ServiceName() {
  static auto* name = new std::string();
  return *name;
}

bool NeedsQuotes(absl::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '=' || c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
      return true;
  }
  return false;
}

std::string Quote(absl::string_view v) {
  if (!NeedsQuotes(v)) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\x%02x", c);
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

absl::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

absl::StatusOr<Level> ParseLevel(absl::string_view text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "debug") return Level::kDebug;
  if (t == "info") return Level::kInfo;
  if (t == "warning" || t == "warn") return Level::kWarning;
  if (t == "error") return Level::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("log_level: must be debug, info, warning or error, got \"", text, "\""));
}

void SetMinLevel(Level level) { min_level.store(static_cast<int>(level)); }

bool Enabled(Level level) { return static_cast<int>(level) >= min_level.load(); }

void SetService(absl::string_view service) {
  absl::MutexLock lock(&service_mu);
  ServiceName() = std::string(service);
}

Field::Field(absl::string_view key, absl::string_view value)
    : text_(absl::StrCat(key, "=", Quote(value))) {}
Field::Field(absl::string_view key, const char* value)
    : Field(key, absl::string_view(value == nullptr ? "" : value)) {}
Field::Field(absl::string_view key, const std::string& value)
    : Field(key, absl::string_view(value)) {}
Field::Field(absl::string_view key, int64_t value) : text_(absl::StrCat(key, "=", value)) {}
Field::Field(absl::string_view key, int value) : text_(absl::StrCat(key, "=", value)) {}
Field::Field(absl::string_view key, uint64_t value) : text_(absl::StrCat(key, "=", value)) {}
Field::Field(absl::string_view key, double value)
    : text_(absl::StrCat(key, "=", absl::StrFormat("%.6g", value))) {}
Field::Field(absl::string_view key, bool value)
    : text_(absl::StrCat(key, "=", value ? "true" : "false")) {}
Field::Field(absl::string_view key, const absl::Status& status)
    : text_(status.ok() ? absl::StrCat(key, "=OK")
                        : absl::StrCat(key, "=", absl::StatusCodeToString(status.code()),
                                       " error=", Quote(status.message()))) {}

std::string FormatLine(Level level, absl::string_view event, std::initializer_list<Field> fields) {
  std::string line = absl::StrCat(
      "ts=", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()),
      " level=", LevelName(level));
  {
    absl::MutexLock lock(&service_mu);
    if (!ServiceName().empty()) absl::StrAppend(&line, " svc=", ServiceName());
  }
  absl::StrAppend(&line, " event=", Quote(event));
  for (const Field& f : fields) absl::StrAppend(&line, " ", f.text());
  line += '\n';
  return line;
}

void Write(Level level, absl::string_view event, std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  const std::string line = FormatLine(level, event, fields);
  // One write(2) so concurrent lines never interleave; a short write on a
  // pipe this small does not happen (PIPE_BUF), but retry on EINTR.
  ssize_t n;
  do {
    n = ::write(STDERR_FILENO, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
}

std::string NewRequestId() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

}  // namespace pettube::log
