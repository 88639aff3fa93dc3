#pragma once

// A service's own durable subscription, created if missing and consumed:
//
//   DurableConsumer consumer(broker_channel, "upload-media-deleted", spec, {
//       .consumer = "upload", .configure_context = workload.ConfigureContext()});
//   consumer.Start([&](const Delivery& d) { return uploads.OnDeleted(d.event()); });
//   ...
//   consumer.Shutdown(absl::Seconds(10));
//
// A service must start while the broker is down (uploads succeed while
// every consumer is away), so creation runs on its own thread: it waits
// for the broker with wait_for_ready (no polling), retries other failures
// after exponential backoff with jitter, and then starts a Subscriber,
// which keeps the stream up from there. ALREADY_EXISTS counts as created:
// the first replica to start creates it, the others attach.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/broker_client/subscriber.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube::broker_client {

// Thread-safe. Owns its thread and Subscriber.
class DurableConsumer {
 public:
  DurableConsumer(std::shared_ptr<grpc::Channel> channel, std::string subscription_id,
                  pettube::broker::v1::Subscription spec, Subscriber::Options options);
  ~DurableConsumer();  // Shutdown(options.shutdown_grace)

  // Starts creating and then consuming; returns at once.
  void Start(DeliveryHandler handler) ABSL_LOCKS_EXCLUDED(mu_);

  // Stops creating or consuming; running handlers get `grace`.
  void Shutdown(absl::Duration grace) ABSL_LOCKS_EXCLUDED(mu_);

  // True once the subscription exists and the Subscriber runs (tests).
  bool consuming() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run(DeliveryHandler handler) ABSL_LOCKS_EXCLUDED(mu_);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string subscription_id_;
  const pettube::broker::v1::Subscription spec_;
  Subscriber::Options options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The creation call in flight, to cancel it on Shutdown.
  grpc::ClientContext* creating_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::unique_ptr<Subscriber> subscriber_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace pettube::broker_client
