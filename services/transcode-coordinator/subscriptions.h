#pragma once

// The coordinator's two broker subscriptions, created at start
// (ALREADY_EXISTS is fine):
//   subscriptions/transcode-coordinator: media.uploaded, job.progressed,
//     job.completed, job.failed, media.deleted (its own input).
//   subscriptions/transcode-jobs: the work queue of job.requested that
//     workers compete for; max attempts and dead letters on, an ack deadline
//     workers extend while ffmpeg runs.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/pettube/broker/v1/broker.pb.h"

namespace pettube::transcode {

inline constexpr char kCoordinatorSubscription[] = "subscriptions/transcode-coordinator";
inline constexpr char kJobsSubscription[] = "subscriptions/transcode-jobs";

struct WorkQueueOptions {
  absl::Duration ack_deadline = absl::Seconds(60);
  int max_delivery_attempts = 3;
  absl::Duration min_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
};

// Settings of each (exposed for tests).
pettube::broker::v1::Subscription CoordinatorSubscription();
pettube::broker::v1::Subscription JobsSubscription(const WorkQueueOptions& options);

// Creates both, waiting up to `timeout` for the broker to be reachable.
absl::Status EnsureSubscriptions(std::shared_ptr<grpc::Channel> broker,
                                 const std::function<void(grpc::ClientContext&)>& configure,
                                 const WorkQueueOptions& options, absl::Duration timeout);

}  // namespace pettube::transcode
