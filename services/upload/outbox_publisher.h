#pragma once

// Drains the upload service's outbox to the broker: each committed
// original's pettube.media.uploaded event is published (its id is the
// media name, so a resend after a crash is a duplicate the broker drops)
// and, once the broker acknowledges it, removed from the outbox and the
// session marked published. While the broker is away the Publisher keeps
// retrying; whatever is still unacknowledged at a restart goes out again.

#include <deque>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/broker_client/publisher.h"
#include "services/upload/upload_probe.h"
#include "services/upload/upload_store.h"

namespace pettube::upload {

// Thread-safe. Shares the store and the publisher (which may be null: no
// broker configured, events wait in the outbox).
class OutboxPublisher {
 public:
  OutboxPublisher(UploadStore* store, broker_client::Publisher* publisher,
                  UploadProbe* probe = nullptr);
  // Stops the bookkeeping thread; acknowledgements not yet recorded are
  // simply published again at the next start.
  ~OutboxPublisher();

  // Hands one entry to the broker. Never blocks.
  void Publish(const OutboxEntry& entry) ABSL_LOCKS_EXCLUDED(mu_);

  // Events published and recorded so far (tests, metrics).
  int64_t published() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Records acknowledged events off the gRPC callback threads (each record
  // is a synced write).
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  UploadStore* const store_;
  broker_client::Publisher* const publisher_;
  UploadProbe* const probe_;
  mutable absl::Mutex mu_;
  std::deque<std::string> acked_ ABSL_GUARDED_BY(mu_);
  int64_t published_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace pettube::upload
