#pragma once

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace pettube::broker {

// Runs posted tasks one at a time, in order, on its own thread, which
// sleeps while there is nothing to do. The broker's store reads for refills
// run here, off its lock and off the request threads.
//
// Thread-safe. The destructor waits for the task in progress and drops the
// ones still queued.
class SerialWorker {
 public:
  SerialWorker();
  ~SerialWorker();

  void Post(std::function<void()> task) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace pettube::broker
