#pragma once

// The coordinator's own metrics on /metrics: events applied, jobs
// finished by final state, media made ready or failed, probe outcomes.

#include "absl/strings/string_view.h"
#include "libs/metrics/registry.h"

namespace pettube::transcode {

// Registers its families at construction; the methods only add.
// Thread-safe.
class CoordinatorProbe {
 public:
  explicit CoordinatorProbe(metrics::Registry& registry);

  // An event of `type` handled: acked (`ok`) or to be retried.
  void EventHandled(absl::string_view type, bool ok);
  // A job reached SUCCEEDED, FAILED or CANCELLED.
  void JobFinished(absl::string_view state);
  // "ready" or "failed".
  void MediaFinished(absl::string_view outcome);
  // "ok", "refused" (the source cannot be transcoded) or "retry".
  void Probed(absl::string_view outcome);

 private:
  metrics::Family<metrics::Counter>* events_;
  metrics::Family<metrics::Counter>* jobs_;
  metrics::Family<metrics::Counter>* media_;
  metrics::Family<metrics::Counter>* probes_;
};

}  // namespace pettube::transcode
