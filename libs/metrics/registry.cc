#include "libs/metrics/registry.h"

#include "absl/strings/str_cat.h"
#include "libs/metrics/check.h"

namespace pettube::metrics {

FamilyBase& Registry::AddFamily(
    MetricType type, const std::string& name, const Labels& constant_labels,
    absl::FunctionRef<std::unique_ptr<FamilyBase>()> make) {
  if (!IsValidMetricName(name)) {
    internal::Die(absl::StrCat(
        "metric name \"", name,
        "\" is invalid: must match [a-zA-Z_:][a-zA-Z0-9_:]* and not start "
        "with __"));
  }
  for (const auto& [label, value] : constant_labels) {
    if (!IsValidLabelName(label)) {
      internal::Die(absl::StrCat(
          "metric ", name, ": constant label name \"", label,
          "\" is invalid: must match [a-zA-Z_][a-zA-Z0-9_]* and not start "
          "with __"));
    }
    if (type == MetricType::kHistogram && label == "le") {
      internal::Die(absl::StrCat(
          "metric ", name, ": label \"le\" is reserved for histogram buckets"));
    }
  }

  absl::MutexLock lock(&mu_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(name, make()).first;
    return *it->second;
  }
  const FamilyBase& existing = *it->second;
  if (existing.type() != type) {
    internal::Die(absl::StrCat("metric ", name, " is already registered as a ",
                               MetricTypeName(existing.type()), ", not a ",
                               MetricTypeName(type)));
  }
  if (existing.constant_labels() != constant_labels) {
    internal::Die(absl::StrCat("metric ", name,
                               " is already registered with other constant "
                               "labels"));
  }
  return *it->second;
}

void Registry::AddCollectCallback(std::function<void()> before_collect) {
  absl::MutexLock lock(&mu_);
  collect_callbacks_.push_back(std::move(before_collect));
}

std::string Registry::Serialize() const {
  absl::MutexLock scrape(&collect_mu_);

  std::vector<std::function<void()>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    callbacks = collect_callbacks_;
  }
  // Outside mu_: a callback may register families or add metrics.
  for (const auto& callback : callbacks) callback();

  std::vector<const FamilyBase*> families;
  {
    absl::MutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_)
      families.push_back(family.get());
  }
  std::string out;
  for (const FamilyBase* family : families) family->AppendText(&out);
  return out;
}

}  // namespace pettube::metrics
