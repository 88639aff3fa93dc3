#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "libs/metrics/counter.h"
#include "libs/metrics/gauge.h"
#include "libs/metrics/histogram.h"
#include "libs/metrics/labels.h"
#include "libs/metrics/text_format.h"

namespace pettube::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// "counter", "gauge", "histogram": the word in a "# TYPE" line.
absl::string_view MetricTypeName(MetricType type);

template <typename T>
struct MetricTraits;
template <>
struct MetricTraits<Counter> {
  static constexpr MetricType kType = MetricType::kCounter;
};
template <>
struct MetricTraits<Gauge> {
  static constexpr MetricType kType = MetricType::kGauge;
};
template <>
struct MetricTraits<Histogram> {
  static constexpr MetricType kType = MetricType::kHistogram;
};

// The type-independent part of a family: what the Registry needs to dedupe
// and serialize families without knowing T. Immutable after construction,
// except for what subclasses guard themselves.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const Labels& constant_labels() const { return constant_labels_; }

  // Appends "# HELP", "# TYPE" and every metric's samples, in label order.
  // Appends nothing if the family has no metrics.
  virtual void AppendText(std::string* out) const = 0;

 protected:
  FamilyBase(std::string name, std::string help, Labels constant_labels,
             MetricType type);

  // Validates `labels` for a new metric of this family and renders them
  // together with the constant labels (see internal::RenderLabels). Aborts
  // (see check.h) on an invalid label name, a name also among the constant
  // labels, or `le` on a histogram, which would clash with the bucket label.
  std::string CheckAndRenderLabels(const Labels& labels) const;

 private:
  const std::string name_;
  const std::string help_;
  const Labels constant_labels_;
  const MetricType type_;
};

// All metrics of one name, one per label set: http_requests_total{code="200"}
// and http_requests_total{code="404"} are two Counters of one Family<Counter>.
// Created by a builder (BuildCounter() etc. in registry.h) and owned by the
// Registry; the family owns its metrics.
//
// Thread-safe: Add, Remove and serialization take an internal absl::Mutex.
// The metrics themselves are lock-free, so keep the reference Add returns
// rather than calling Add on every event.
template <typename T>
class Family final : public FamilyBase {
 public:
  Family(std::string name, std::string help, Labels constant_labels)
      : FamilyBase(std::move(name), std::move(help), std::move(constant_labels),
                   MetricTraits<T>::kType) {}

  // Returns the metric for `labels`, creating it from `args` (e.g. bucket
  // boundaries for a Histogram) on first use; later calls with the same
  // labels return the same instance and ignore `args`. The reference stays
  // valid until Remove or the Registry's destruction. Aborts on invalid label
  // names (see CheckAndRenderLabels).
  template <typename... Args>
  T& Add(const Labels& labels, Args&&... args) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = metrics_.find(labels);
    if (it == metrics_.end()) {
      Entry entry{std::make_unique<T>(std::forward<Args>(args)...),
                  CheckAndRenderLabels(labels)};
      it = metrics_.emplace(labels, std::move(entry)).first;
    }
    return *it->second.metric;
  }

  // Deletes `metric` so it is no longer exported (e.g. a subscription that
  // was dropped). References to it dangle afterwards. No-op if `metric` is not
  // in this family.
  void Remove(T* metric) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    for (auto it = metrics_.begin(); it != metrics_.end(); ++it) {
      if (it->second.metric.get() == metric) {
        metrics_.erase(it);
        return;
      }
    }
  }

  void AppendText(std::string* out) const ABSL_LOCKS_EXCLUDED(mu_) override {
    absl::MutexLock lock(&mu_);
    if (metrics_.empty()) return;
    internal::AppendHeader(name(), help(), MetricTypeName(type()), out);
    for (const auto& [labels, entry] : metrics_) {
      internal::AppendSamples(name(), entry.rendered_labels, *entry.metric,
                              out);
    }
  }

 private:
  struct Entry {
    std::unique_ptr<T> metric;
    // Rendered once at Add: a scrape only concatenates.
    std::string rendered_labels;
  };

  mutable absl::Mutex mu_;
  // Ordered by labels: the stable order metrics are serialized in.
  std::map<Labels, Entry> metrics_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pettube::metrics
