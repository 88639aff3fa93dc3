#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace pettube::concurrency {

// A fixed set of threads running queued work in arrival order. Servers use
// it to keep blocking or CPU-heavy handler work (a storage read, a render)
// off gRPC's polling threads, which then keep reading the connection while
// the work runs on another core. Idle threads sleep on the queue (no CPU).
//
// A pool may bound its queue: then work beyond `max_queued` waiting is
// refused (TrySchedule returns false) instead of queuing without limit, so
// an overloaded server sheds calls rather than memory and latency.
//
// Thread-safe. The destructor runs what is queued, then joins.
class ThreadPool {
 public:
  // `max_queued` 0: the queue is unbounded.
  explicit ThreadPool(int threads, size_t max_queued = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `work` whatever the bound.
  void Schedule(std::function<void()> work) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues `work` unless `max_queued` works already wait; false (and
  // `work` dropped, not run) if they do.
  bool TrySchedule(std::function<void()> work) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  const size_t max_queued_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace pettube::concurrency
