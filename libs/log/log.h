#pragma once

// Structured logs: one line per event on stderr, logfmt style, e.g.
//   ts=2026-11-23T05:30:00.123456Z level=info svc=broker event=rpc.done
//       method=/pettube.broker.v1.Broker/Publish code=OK ms=0.41 request_id=5f0c...
// (one line; wrapped here). stdout is left to the `ready ...` line that
// scripts and tests read. Debian's Abseil (20220623) predates absl/log, so
// this is our own, deliberately small.
//
// Thread-safe: each line is written with a single write(2).

#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pettube::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Parses "debug", "info", "warning" (or "warn"), "error".
absl::StatusOr<Level> ParseLevel(absl::string_view text);

// Lines below `level` are dropped. Default kInfo.
void SetMinLevel(Level level);
bool Enabled(Level level);

// Name of this process, added to every line as svc=.
void SetService(absl::string_view service);

// One key=value pair. Values are quoted when they need it.
class Field {
 public:
  Field(absl::string_view key, absl::string_view value);
  Field(absl::string_view key, const char* value);
  Field(absl::string_view key, const std::string& value);
  Field(absl::string_view key, int64_t value);
  Field(absl::string_view key, int value);
  Field(absl::string_view key, uint64_t value);
  Field(absl::string_view key, double value);
  Field(absl::string_view key, bool value);
  // Logs the code and message as code= and error=.
  Field(absl::string_view key, const absl::Status& status);

  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// Formats one line without writing it (exposed for tests).
std::string FormatLine(Level level, absl::string_view event, std::initializer_list<Field> fields);

void Write(Level level, absl::string_view event, std::initializer_list<Field> fields);

inline void Debug(absl::string_view event, std::initializer_list<Field> fields = {}) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, event, fields);
}
inline void Info(absl::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kInfo, event, fields);
}
inline void Warning(absl::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kWarning, event, fields);
}
inline void Error(absl::string_view event, std::initializer_list<Field> fields = {}) {
  Write(Level::kError, event, fields);
}

// A random 128-bit id, hex, for requests that arrive without one.
std::string NewRequestId();

}  // namespace pettube::log
