#pragma once

#include <map>
#include <string>

#include "absl/strings/string_view.h"

namespace pettube::metrics {

// Label name -> value. An ordered map, so one label set has one spelling and
// the metrics of a family serialize in a stable order.
using Labels = std::map<std::string, std::string>;

// True if `name` matches [a-zA-Z_:][a-zA-Z0-9_:]* and does not start with
// "__" (reserved by Prometheus for internal use).
bool IsValidMetricName(absl::string_view name);

// True if `name` matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__".
bool IsValidLabelName(absl::string_view name);

}  // namespace pettube::metrics
