#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "libs/metrics/counter.h"
#include "libs/metrics/family.h"
#include "libs/metrics/gauge.h"
#include "libs/metrics/histogram.h"
#include "libs/metrics/labels.h"

namespace pettube::metrics {

// The set of metric families a process exports, serialized for a Prometheus
// scrape. Shaped like prometheus-cpp's Registry (not packaged in Debian 12),
// so code reads the same; register families through the builders below.
//
//   Registry registry;
//   Family<Counter>& requests = BuildCounter()
//       .Name("pettube_http_requests_total")
//       .Help("HTTP requests served, by status code.")
//       .Register(registry);
//   Counter& ok = requests.Add({{"code", "200"}});
//   ok.Increment();
//   std::string text = registry.Serialize();
//
// Owns its families, which own their metrics: references handed out stay
// valid for the Registry's lifetime (unless Family::Remove'd).
//
// Thread-safe. Registration errors in names are programming errors and abort
// the process with a message on stderr (see check.h).
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers family `name` of type T, or returns the one already registered
  // under `name` if its type and constant labels match (its help is kept).
  // Aborts if `name` or a constant label name is invalid (see labels.h), or
  // if `name` is taken by a family of another type or other constant labels.
  template <typename T>
  Family<T>& Add(const std::string& name, const std::string& help,
                 const Labels& constant_labels) ABSL_LOCKS_EXCLUDED(mu_) {
    FamilyBase& family = AddFamily(
        MetricTraits<T>::kType, name, constant_labels,
        [&]() -> std::unique_ptr<FamilyBase> {
          return std::make_unique<Family<T>>(name, help, constant_labels);
        });
    return static_cast<Family<T>&>(family);
  }

  // Registers `before_collect`, run at the start of every Serialize() to set
  // values known only at scrape time (e.g. a gauge of broker backlog per
  // subscription). Runs on the scraping thread, one scrape at a time, with no
  // Registry lock held, so it may register families and set metrics; it must
  // not call Serialize().
  void AddCollectCallback(std::function<void()> before_collect)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the collect callbacks, then returns every family in the Prometheus
  // text exposition format 0.0.4: families sorted by name, "# HELP" (if any)
  // and "# TYPE" once each, metrics in label order. Families with no metrics
  // are left out.
  std::string Serialize() const ABSL_LOCKS_EXCLUDED(collect_mu_, mu_);

 private:
  FamilyBase& AddFamily(MetricType type, const std::string& name,
                        const Labels& constant_labels,
                        absl::FunctionRef<std::unique_ptr<FamilyBase>()> make)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Held for a whole Serialize(): concurrent scrapes queue, so collect
  // callbacks never run concurrently with each other. Acquired before mu_.
  mutable absl::Mutex collect_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  // By name: the order families are serialized in. Never erased from, so
  // pointers taken under mu_ stay valid after it is released.
  std::map<std::string, std::unique_ptr<FamilyBase>> families_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> collect_callbacks_ ABSL_GUARDED_BY(mu_);
};

// Fluent registration, as in prometheus-cpp:
//   auto& family = BuildGauge().Name("x").Help("...").Register(registry);
// Name is required; Help and constant Labels are optional.
template <typename T>
class Builder {
 public:
  Builder& Name(std::string name) {
    name_ = std::move(name);
    return *this;
  }
  Builder& Help(std::string help) {
    help_ = std::move(help);
    return *this;
  }
  // Constant labels, attached to every metric of the family.
  Builder& Labels(const std::map<std::string, std::string>& labels) {
    labels_ = labels;
    return *this;
  }
  // See Registry::Add for the result and the abort conditions.
  Family<T>& Register(Registry& registry) const {
    return registry.Add<T>(name_, help_, labels_);
  }

 private:
  std::string name_;
  std::string help_;
  std::map<std::string, std::string> labels_;
};

inline Builder<Counter> BuildCounter() { return {}; }
inline Builder<Gauge> BuildGauge() { return {}; }
// Metrics are added with their buckets:
//   family.Add({{"method", "Get"}}, DefaultLatencyBuckets());
inline Builder<Histogram> BuildHistogram() { return {}; }

}  // namespace pettube::metrics
