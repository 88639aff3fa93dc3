#include "libs/metrics/text_format.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace pettube::metrics::internal {
namespace {

// Doubles hold every integer below 2^53 (~9e15) exactly; 1e15 keeps clear of
// that edge and of 16-digit integers that would read as noise.
constexpr double kMaxPlainInteger = 1e15;

void AppendSample(absl::string_view name, absl::string_view suffix,
                  absl::string_view labels, absl::string_view value,
                  std::string* out) {
  absl::StrAppend(out, name, suffix);
  if (!labels.empty()) absl::StrAppend(out, "{", labels, "}");
  absl::StrAppend(out, " ", value, "\n");
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < kMaxPlainInteger) {
    // Via int64 so -0.0 prints as "0".
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // Shortest round-trip text, %g style: "0.0005", "0.25", "1.5e+20". Same
  // choices as Go's strconv 'g' with precision -1, which Prometheus parses.
  char buffer[32];
  const std::to_chars_result result = std::to_chars(
      buffer, buffer + sizeof(buffer), value, std::chars_format::general);
  if (result.ec != std::errc()) return absl::StrCat(value);  // Cannot happen.
  return std::string(buffer, result.ptr);
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string escaped;
  escaped.reserve(value.size());
  for (const char c : value) {
    switch (c) {
      case '\\':
        escaped += "\\\\";
        break;
      case '"':
        escaped += "\\\"";
        break;
      case '\n':
        escaped += "\\n";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::string EscapeHelp(absl::string_view help) {
  std::string escaped;
  escaped.reserve(help.size());
  for (const char c : help) {
    switch (c) {
      case '\\':
        escaped += "\\\\";
        break;
      case '\n':
        escaped += "\\n";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::string RenderLabels(const Labels& constant_labels, const Labels& labels) {
  Labels all = constant_labels;
  all.insert(labels.begin(), labels.end());
  std::string rendered;
  for (const auto& [name, value] : all) {
    if (!rendered.empty()) rendered += ',';
    absl::StrAppend(&rendered, name, "=\"", EscapeLabelValue(value), "\"");
  }
  return rendered;
}

void AppendHeader(absl::string_view name, absl::string_view help,
                  absl::string_view type, std::string* out) {
  if (!help.empty()) {
    absl::StrAppend(out, "# HELP ", name, " ", EscapeHelp(help), "\n");
  }
  absl::StrAppend(out, "# TYPE ", name, " ", type, "\n");
}

void AppendSamples(absl::string_view name, absl::string_view labels,
                   const Counter& counter, std::string* out) {
  AppendSample(name, "", labels, FormatValue(counter.Value()), out);
}

void AppendSamples(absl::string_view name, absl::string_view labels,
                   const Gauge& gauge, std::string* out) {
  AppendSample(name, "", labels, FormatValue(gauge.Value()), out);
}

void AppendSamples(absl::string_view name, absl::string_view labels,
                   const Histogram& histogram, std::string* out) {
  const HistogramSnapshot snapshot = histogram.Snapshot();
  const std::string prefix = labels.empty() ? "" : absl::StrCat(labels, ",");
  for (size_t i = 0; i < snapshot.cumulative_counts.size(); ++i) {
    const std::string bound = i < snapshot.bucket_boundaries.size()
                                  ? FormatValue(snapshot.bucket_boundaries[i])
                                  : "+Inf";
    AppendSample(name, "_bucket", absl::StrCat(prefix, "le=\"", bound, "\""),
                 absl::StrCat(snapshot.cumulative_counts[i]), out);
  }
  AppendSample(name, "_sum", labels, FormatValue(snapshot.sum), out);
  AppendSample(name, "_count", labels, absl::StrCat(snapshot.count), out);
}

}  // namespace pettube::metrics::internal
