#include "services/transcode-supervisor/supervisor.h"

#include <signal.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"

namespace pettube::transcode {

int WorkersToStart(int64_t backlog, int running, int max_workers) {
  const int64_t wanted = std::min<int64_t>(std::max<int64_t>(backlog, 0), max_workers);
  return static_cast<int>(std::max<int64_t>(0, wanted - running));
}

Supervisor::Supervisor(Options options) : options_(std::move(options)) {
  control_ = std::thread([this] { ControlLoop(); });
}

Supervisor::~Supervisor() { Shutdown(); }

void Supervisor::OnStats(int64_t backlog, int64_t in_flight) {
  absl::MutexLock lock(&mu_);
  if (backlog > 0 && counts_.backlog == 0) first_backlog_ = absl::Now();
  counts_.backlog = backlog;
  log::Debug("supervisor.stats",
             {{"backlog", backlog}, {"in_flight", in_flight}, {"running", counts_.running}});
}

Supervisor::Counts Supervisor::counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

bool Supervisor::WaitFor(const std::function<bool(const Counts&)>& done, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  struct Args {
    const Supervisor* s;
    const std::function<bool(const Counts&)>* done;
  } args{this, &done};
  return mu_.AwaitWithTimeout(
      absl::Condition(
          +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS { return (*a->done)(a->s->counts_); }, &args),
      timeout);
}

void Supervisor::ControlLoop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    // Sleep until there is something to do: a worker to start (now or at
    // the end of a backoff), exited workers to join, or stop.
    auto wanted = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return WorkersToStart(counts_.backlog, counts_.running, options_.max_workers) > 0;
    };
    struct Self {
      Supervisor* s;
    } self{this};
    auto cond = absl::Condition(
        +[](Self* x) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          Supervisor* s = x->s;
          return s->stopping_ || !s->finished_.empty() ||
                 WorkersToStart(s->counts_.backlog, s->counts_.running, s->options_.max_workers) >
                     0;
        },
        &self);
    mu_.Await(cond);
    if (stopping_) {
      StopAllLocked();
      return;
    }
    std::vector<std::unique_ptr<Child>> finished = std::move(finished_);
    finished_.clear();
    if (!finished.empty()) {
      mu_.Unlock();
      for (auto& c : finished) c->waiter.join();
      finished.clear();
      mu_.Lock();
      continue;
    }
    if (!wanted()) continue;
    const absl::Time now = absl::Now();
    if (now < next_start_) {
      // A real deadline: the end of the backoff (or a change).
      struct Until {
        Supervisor* s;
      } until{this};
      mu_.AwaitWithDeadline(absl::Condition(
                                +[](Until* u) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                  return u->s->stopping_ || !u->s->finished_.empty();
                                },
                                &until),
                            next_start_);
      continue;
    }
    StartOneLocked();
  }
}

void Supervisor::StartOneLocked() {
  const int64_t id = next_id_++;
  Subprocess::Options o;
  for (const std::string& arg : options_.worker_argv) {
    o.argv.push_back(absl::StrReplaceAll(arg, {{"{n}", absl::StrCat(id)}}));
  }
  o.env = options_.worker_env;
  o.inherit_stderr = true;
  const absl::Time backlog_since = first_backlog_;
  o.on_stdout_line = [id, backlog_since](absl::string_view line) {
    if (absl::StartsWith(line, "ready ")) {
      log::Info("supervisor.worker_ready",
                {{"worker", id},
                 {"ms_since_backlog", absl::ToDoubleMilliseconds(absl::Now() - backlog_since)}});
    }
  };
  auto process = Subprocess::Start(std::move(o));
  if (!process.ok()) {
    log::Error("supervisor.start_failed", {{"status", process.status()}});
    ++failed_starts_;
    next_start_ = absl::Now() + std::min(options_.max_backoff,
                                         absl::Seconds(1) * (1 << std::min(failed_starts_, 5)));
    return;
  }
  auto child = std::make_unique<Child>();
  child->process = std::move(*process);
  child->start = absl::Now();
  Subprocess* p = child->process.get();
  log::Info("supervisor.worker_started", {{"worker", id},
                                          {"pid", static_cast<int64_t>(p->pid())},
                                          {"backlog", counts_.backlog},
                                          {"running", counts_.running + 1}});
  child->waiter = std::thread([this, id, p] { OnExit(id, p->Wait()); });
  children_[id] = std::move(child);
  ++counts_.running;
  ++counts_.started_total;
}

void Supervisor::OnExit(int64_t id, const Subprocess::Result& result) {
  absl::MutexLock lock(&mu_);
  auto it = children_.find(id);
  if (it == children_.end()) return;
  const absl::Duration ran = absl::Now() - it->second->start;
  log::Info("supervisor.worker_exited", {{"worker", id},
                                         {"code", result.exit_code},
                                         {"signal", result.signal},
                                         {"seconds", absl::ToDoubleSeconds(ran)}});
  if (result.exit_code != 0 && ran < options_.min_healthy_run) {
    ++failed_starts_;
    next_start_ = absl::Now() + std::min(options_.max_backoff,
                                         absl::Seconds(1) * (1 << std::min(failed_starts_, 5)));
  } else {
    failed_starts_ = 0;
  }
  // The waiter thread is this one: it is joined by the control loop.
  finished_.push_back(std::move(it->second));
  children_.erase(it);
  --counts_.running;
  ++counts_.exited_total;
}

void Supervisor::StopAllLocked() {
  // Here, on the thread that started them: were it to exit first, the
  // workers would be SIGKILLed at once (PR_SET_PDEATHSIG).
  for (auto& [id, child] : children_) child->process->Signal(SIGTERM);
  mu_.AwaitWithTimeout(
      absl::Condition(
          +[](Supervisor* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->counts_.running == 0; },
          this),
      options_.stop_grace);
  for (auto& [id, child] : children_) child->process->Signal(SIGKILL);
  mu_.Await(absl::Condition(
      +[](Supervisor* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->counts_.running == 0; }, this));
  std::vector<std::unique_ptr<Child>> finished = std::move(finished_);
  finished_.clear();
  mu_.Unlock();
  for (auto& c : finished) c->waiter.join();
  mu_.Lock();
}

void Supervisor::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  absl::MutexLock join_lock(&join_mu_);
  if (control_.joinable()) control_.join();
}

}  // namespace pettube::transcode
