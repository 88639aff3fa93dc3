#include "libs/metrics/family.h"

#include "absl/strings/str_cat.h"
#include "libs/metrics/check.h"

namespace pettube::metrics {

absl::string_view MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

FamilyBase::FamilyBase(std::string name, std::string help,
                       Labels constant_labels, MetricType type)
    : name_(std::move(name)),
      help_(std::move(help)),
      constant_labels_(std::move(constant_labels)),
      type_(type) {}

std::string FamilyBase::CheckAndRenderLabels(const Labels& labels) const {
  for (const auto& [label, value] : labels) {
    if (!IsValidLabelName(label)) {
      internal::Die(absl::StrCat(
          "metric ", name_, ": label name \"", label,
          "\" is invalid: must match [a-zA-Z_][a-zA-Z0-9_]* and not start "
          "with __"));
    }
    if (constant_labels_.count(label) > 0) {
      internal::Die(absl::StrCat("metric ", name_, ": label \"", label,
                                 "\" is already a constant label"));
    }
    if (type_ == MetricType::kHistogram && label == "le") {
      internal::Die(absl::StrCat("metric ", name_,
                                 ": label \"le\" is reserved for histogram "
                                 "buckets"));
    }
  }
  return internal::RenderLabels(constant_labels_, labels);
}

}  // namespace pettube::metrics
