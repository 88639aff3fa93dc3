#include "services/upload/outbox_publisher.h"

#include "libs/log/log.h"

namespace pettube::upload {

OutboxPublisher::OutboxPublisher(UploadStore* store, broker_client::Publisher* publisher,
                                 UploadProbe* probe)
    : store_(store), publisher_(publisher), probe_(probe), thread_([this] { Run(); }) {}

OutboxPublisher::~OutboxPublisher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void OutboxPublisher::Publish(const OutboxEntry& entry) {
  if (publisher_ == nullptr) {
    log::Warning("upload.event_waiting", {{"upload", entry.upload_id},
                                          {"reason", "no --broker_server: kept in the outbox"}});
    return;
  }
  publisher_->PublishAsync(
      entry.event, [this, id = entry.upload_id,
                    event_id = entry.event.id()](absl::StatusOr<broker_client::PublishResult> r) {
        if (!r.ok()) {
          // Refused for good (the Publisher retries what can be retried),
          // or the service is stopping: the entry stays for the next start.
          log::Warning("upload.event_not_published",
                       {{"upload", id}, {"event", event_id}, {"code", r.status()}});
          return;
        }
        absl::MutexLock lock(&mu_);
        acked_.push_back(id);
      });
}

int64_t OutboxPublisher::published() const {
  absl::MutexLock lock(&mu_);
  return published_;
}

void OutboxPublisher::Run() {
  mu_.Lock();
  while (true) {
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || !acked_.empty();
    };
    mu_.Await(absl::Condition(&ready));
    // Acks already received are recorded before stopping.
    if (acked_.empty()) break;
    const std::string id = std::move(acked_.front());
    acked_.pop_front();
    mu_.Unlock();
    absl::Status s = store_->MarkPublished(id);
    if (!s.ok()) log::Warning("upload.outbox_mark_failed", {{"upload", id}, {"code", s}});
    mu_.Lock();
    if (s.ok()) {
      ++published_;
      if (probe_ != nullptr) probe_->EventPublished();
    }
  }
  mu_.Unlock();
}

}  // namespace pettube::upload
