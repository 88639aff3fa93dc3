#pragma once

#include "absl/status/status.h"
#include "libs/metrics/counter.h"
#include "libs/metrics/family.h"
#include "libs/metrics/registry.h"

namespace pettube::catalog {

// The projection's metrics: pettube_catalog_events_total{result=...}:
// "applied" (or already applied), "refused" (can never apply; nacked
// towards the dead-letter queue), "retry" (a transient error). Thread-safe.
class ProjectionProbe {
 public:
  explicit ProjectionProbe(metrics::Registry& registry);

  // Counts `status` and returns it unchanged (for the subscriber's ack).
  absl::Status Record(absl::Status status);

 private:
  explicit ProjectionProbe(metrics::Family<metrics::Counter>& events);

  metrics::Counter& applied_;
  metrics::Counter& refused_;
  metrics::Counter& retry_;
};

}  // namespace pettube::catalog
