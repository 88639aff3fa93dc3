#include "services/media-catalog/projection_probe.h"

namespace pettube::catalog {
namespace {

metrics::Family<metrics::Counter>& Events(metrics::Registry& registry) {
  return metrics::BuildCounter()
      .Name("pettube_catalog_events_total")
      .Help("Events handled by the catalog's projection, by result.")
      .Register(registry);
}

}  // namespace

ProjectionProbe::ProjectionProbe(metrics::Registry& registry) : ProjectionProbe(Events(registry)) {}

ProjectionProbe::ProjectionProbe(metrics::Family<metrics::Counter>& events)
    : applied_(events.Add({{"result", "applied"}})),
      refused_(events.Add({{"result", "refused"}})),
      retry_(events.Add({{"result", "retry"}})) {}

absl::Status ProjectionProbe::Record(absl::Status status) {
  if (status.ok()) {
    applied_.Increment();
  } else if (absl::IsInvalidArgument(status)) {
    refused_.Increment();
  } else {
    retry_.Increment();
  }
  return status;
}

}  // namespace pettube::catalog
