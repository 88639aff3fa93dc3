#pragma once

// Pieces of the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), kept in one
// place so Family<T> only decides what to write, not how.

#include <string>

#include "absl/strings/string_view.h"
#include "libs/metrics/counter.h"
#include "libs/metrics/gauge.h"
#include "libs/metrics/histogram.h"
#include "libs/metrics/labels.h"

namespace pettube::metrics::internal {

// A sample value as Prometheus parses it: "+Inf", "-Inf", "NaN"; integral
// values below 1e15 as plain integers ("1234567", not "1.234567e+06");
// anything else as the shortest text that parses back to the same double.
std::string FormatValue(double value);

// Label value escaping: backslash, double quote and newline.
std::string EscapeLabelValue(absl::string_view value);

// HELP text escaping: backslash and newline (quotes stay as they are).
std::string EscapeHelp(absl::string_view help);

// `name="value",...` for the union of both sets, sorted by name, without
// braces, so a histogram can append its `le` label. The sets must not share
// a name (Family checks).
std::string RenderLabels(const Labels& constant_labels, const Labels& labels);

// "# HELP" (omitted when `help` is empty) and "# TYPE" lines.
void AppendHeader(absl::string_view name, absl::string_view help,
                  absl::string_view type, std::string* out);

// Sample lines of one metric; `labels` as RenderLabels returns them.
void AppendSamples(absl::string_view name, absl::string_view labels,
                   const Counter& counter, std::string* out);
void AppendSamples(absl::string_view name, absl::string_view labels,
                   const Gauge& gauge, std::string* out);
void AppendSamples(absl::string_view name, absl::string_view labels,
                   const Histogram& histogram, std::string* out);

}  // namespace pettube::metrics::internal
