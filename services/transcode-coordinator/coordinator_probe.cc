#include "services/transcode-coordinator/coordinator_probe.h"

#include <string>

namespace pettube::transcode {

CoordinatorProbe::CoordinatorProbe(metrics::Registry& registry) {
  events_ = &metrics::BuildCounter()
                 .Name("pettube_transcode_events_total")
                 .Help(
                     "Events handled by the coordinator, by type and result (ok: acked, "
                     "retry: nacked).")
                 .Register(registry);
  jobs_ = &metrics::BuildCounter()
               .Name("pettube_transcode_jobs_finished_total")
               .Help("Transcode jobs that reached a final state, by state.")
               .Register(registry);
  media_ = &metrics::BuildCounter()
                .Name("pettube_transcode_media_total")
                .Help("Media items finished, by outcome (ready, failed).")
                .Register(registry);
  probes_ = &metrics::BuildCounter()
                 .Name("pettube_transcode_probes_total")
                 .Help("ffprobe runs on sources, by outcome (ok, refused, retry).")
                 .Register(registry);
}

void CoordinatorProbe::EventHandled(absl::string_view type, bool ok) {
  events_->Add({{"type", std::string(type)}, {"result", ok ? "ok" : "retry"}}).Increment();
}

void CoordinatorProbe::JobFinished(absl::string_view state) {
  jobs_->Add({{"state", std::string(state)}}).Increment();
}

void CoordinatorProbe::MediaFinished(absl::string_view outcome) {
  media_->Add({{"outcome", std::string(outcome)}}).Increment();
}

void CoordinatorProbe::Probed(absl::string_view outcome) {
  probes_->Add({{"outcome", std::string(outcome)}}).Increment();
}

}  // namespace pettube::transcode
