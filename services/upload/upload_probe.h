#pragma once

// The upload service's own metrics on /metrics: what an operator watches
// (bytes in, commits, expiries, events handed to the broker, downloads).

#include <string>

#include "absl/strings/string_view.h"
#include "libs/metrics/registry.h"

namespace pettube::upload {

// Registers its families at construction; the methods only add. Thread-safe.
class UploadProbe {
 public:
  explicit UploadProbe(metrics::Registry& registry);

  void BytesReceived(int64_t bytes) { bytes_received_->Increment(static_cast<double>(bytes)); }
  void Committed(absl::string_view bucket, int64_t bytes);
  void Expired() { expired_->Increment(); }
  void EventPublished() { events_published_->Increment(); }
  // One object request answered with HTTP `status` and a body of `bytes`.
  void Served(int status, int64_t bytes);

 private:
  metrics::Counter* bytes_received_;
  metrics::Family<metrics::Counter>* commits_;
  metrics::Family<metrics::Counter>* committed_bytes_;
  metrics::Counter* expired_;
  metrics::Counter* events_published_;
  metrics::Family<metrics::Counter>* downloads_;
  metrics::Counter* bytes_served_;
};

}  // namespace pettube::upload
