#include "services/upload/upload_probe.h"

#include "absl/strings/str_cat.h"

namespace pettube::upload {

UploadProbe::UploadProbe(metrics::Registry& registry) {
  bytes_received_ = &metrics::BuildCounter()
                         .Name("pettube_upload_bytes_received_total")
                         .Help("Bytes accepted on Write streams (before commit).")
                         .Register(registry)
                         .Add({});
  commits_ = &metrics::BuildCounter()
                  .Name("pettube_upload_commits_total")
                  .Help("Objects committed, by bucket.")
                  .Register(registry);
  committed_bytes_ = &metrics::BuildCounter()
                          .Name("pettube_upload_committed_bytes_total")
                          .Help("Bytes of committed objects, by bucket.")
                          .Register(registry);
  expired_ = &metrics::BuildCounter()
                  .Name("pettube_upload_expired_total")
                  .Help("Unfinished uploads removed after --upload_ttl.")
                  .Register(registry)
                  .Add({});
  events_published_ = &metrics::BuildCounter()
                           .Name("pettube_upload_events_published_total")
                           .Help("pettube.media.uploaded events acknowledged by the broker.")
                           .Register(registry)
                           .Add({});
  downloads_ = &metrics::BuildCounter()
                    .Name("pettube_object_requests_total")
                    .Help("Object server requests, by HTTP status.")
                    .Register(registry);
  bytes_served_ = &metrics::BuildCounter()
                       .Name("pettube_object_bytes_served_total")
                       .Help("Body bytes the object server answered with (ranges included).")
                       .Register(registry)
                       .Add({});
}

void UploadProbe::Committed(absl::string_view bucket, int64_t bytes) {
  const metrics::Labels labels = {{"bucket", std::string(bucket)}};
  commits_->Add(labels).Increment();
  committed_bytes_->Add(labels).Increment(static_cast<double>(bytes));
}

void UploadProbe::Served(int status, int64_t bytes) {
  downloads_->Add({{"code", absl::StrCat(status)}}).Increment();
  // Object bytes only, not the text of refusals.
  if (status / 100 == 2 && bytes > 0) bytes_served_->Increment(static_cast<double>(bytes));
}

}  // namespace pettube::upload
