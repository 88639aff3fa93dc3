#pragma once

// A worker's own metrics on /metrics: jobs by result and time spent in
// them.

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/metrics/registry.h"

namespace pettube::transcode {

// Registers its families at construction; the methods only add.
// Thread-safe.
class WorkerProbe {
 public:
  explicit WorkerProbe(metrics::Registry& registry);

  // `result`: completed, failed, cancelled, skipped, handed_back.
  void JobDone(absl::string_view result, absl::Duration elapsed);

 private:
  metrics::Family<metrics::Counter>* jobs_;
  metrics::Family<metrics::Counter>* seconds_;
};

}  // namespace pettube::transcode
