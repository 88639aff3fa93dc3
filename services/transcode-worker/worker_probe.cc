#include "services/transcode-worker/worker_probe.h"

#include <string>

namespace pettube::transcode {

WorkerProbe::WorkerProbe(metrics::Registry& registry) {
  jobs_ = &metrics::BuildCounter()
               .Name("pettube_transcode_worker_jobs_total")
               .Help(
                   "Job deliveries handled, by result (completed, failed, cancelled, skipped, "
                   "handed_back).")
               .Register(registry);
  seconds_ = &metrics::BuildCounter()
                  .Name("pettube_transcode_worker_job_seconds_total")
                  .Help("Wall time spent on job deliveries, by result.")
                  .Register(registry);
}

void WorkerProbe::JobDone(absl::string_view result, absl::Duration elapsed) {
  const metrics::Labels labels = {{"result", std::string(result)}};
  jobs_->Add(labels).Increment();
  seconds_->Add(labels).Increment(absl::ToDoubleSeconds(elapsed));
}

}  // namespace pettube::transcode
