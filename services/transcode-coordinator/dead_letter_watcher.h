#pragma once

// Tells the Coordinator about jobs the work queue dead-lettered: holds the
// broker's pushed stats of subscriptions/transcode-jobs, and whenever its
// dead-letter count grows, lists the dead letters (ListDeadLetters) and
// hands each to Coordinator::OnDeadLetter. This covers a job whose last
// attempt ended without a job.failed (worker killed, lease expired).
// Nothing runs while the count does not change. Dead letters stay in the
// queue for inspection and redrive.
//
// Thread-safe; borrows the coordinator. Owns its thread and stream.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "libs/broker_client/stats_watcher.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "services/transcode-coordinator/coordinator.h"

namespace pettube::transcode {

class DeadLetterWatcher {
 public:
  DeadLetterWatcher(std::shared_ptr<grpc::Channel> broker,
                    std::function<void(grpc::ClientContext&)> configure, Coordinator& coordinator,
                    std::string subscription);
  ~DeadLetterWatcher();  // Shutdown

  absl::Status Start();
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Lists every dead letter and applies it.
  absl::Status Sweep();

  const std::function<void(grpc::ClientContext&)> configure_;
  Coordinator& coordinator_;
  const std::string subscription_;
  std::unique_ptr<pettube::broker::v1::Broker::Stub> stub_;
  broker_client::StatsWatcher watcher_;

  absl::Mutex mu_;
  int64_t seen_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t latest_count_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace pettube::transcode
