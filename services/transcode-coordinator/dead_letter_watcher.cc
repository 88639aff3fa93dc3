#include "services/transcode-coordinator/dead_letter_watcher.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"

namespace pettube::transcode {
namespace {

broker_client::StatsWatcher::Options WatcherOptions(
    const std::string& subscription, std::function<void(grpc::ClientContext&)> configure) {
  broker_client::StatsWatcher::Options options;
  options.subscription = subscription;
  options.configure_context = std::move(configure);
  return options;
}

}  // namespace

DeadLetterWatcher::DeadLetterWatcher(std::shared_ptr<grpc::Channel> broker,
                                     std::function<void(grpc::ClientContext&)> configure,
                                     Coordinator& coordinator, std::string subscription)
    : configure_(configure),
      coordinator_(coordinator),
      subscription_(std::move(subscription)),
      stub_(pettube::broker::v1::Broker::NewStub(broker)),
      watcher_(broker, WatcherOptions(subscription_, configure)) {}

DeadLetterWatcher::~DeadLetterWatcher() { Shutdown(); }

absl::Status DeadLetterWatcher::Start() {
  thread_ = std::thread([this] { Loop(); });
  return watcher_.Start([this](const broker_client::SubscriptionStats& stats) {
    absl::MutexLock lock(&mu_);
    latest_count_ = stats.dead_letter_count();
  });
}

void DeadLetterWatcher::Shutdown() {
  watcher_.Shutdown();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void DeadLetterWatcher::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    // Only a grown count means new dead letters; a redrive shrinks it.
    mu_.Await(absl::Condition(
        +[](DeadLetterWatcher* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) {
          return w->stopping_ || w->latest_count_ > w->seen_count_ ||
                 w->latest_count_ < w->seen_count_;
        },
        this));
    if (stopping_) return;
    const int64_t target = latest_count_;
    if (target < seen_count_) {
      seen_count_ = target;
      continue;
    }
    mu_.Unlock();
    absl::Status s = Sweep();
    mu_.Lock();
    if (s.ok()) {
      seen_count_ = target;
    } else {
      log::Warning("coordinator.dead_letter_sweep_failed", {{"status", s}});
      // Try again after a real delay (or on the next change / stop).
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](DeadLetterWatcher* w)
                                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(w->mu_) { return w->stopping_; },
                               this),
                           absl::Seconds(5));
    }
  }
}

absl::Status DeadLetterWatcher::Sweep() {
  std::string page_token;
  do {
    pettube::broker::v1::ListDeadLettersRequest req;
    req.set_subscription(subscription_);
    req.set_page_size(100);
    req.set_page_token(page_token);
    pettube::broker::v1::ListDeadLettersResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (configure_) configure_(ctx);
    grpc::Status s = stub_->ListDeadLetters(&ctx, req, &resp);
    if (!s.ok()) return status::FromGrpcStatus(s, "ListDeadLetters");
    for (const auto& dl : resp.dead_letters()) {
      if (auto st = coordinator_.OnDeadLetter(dl.event(), dl.attempts(), dl.last_error());
          !st.ok()) {
        return st;
      }
    }
    page_token = resp.next_page_token();
  } while (!page_token.empty());
  return absl::OkStatus();
}

}  // namespace pettube::transcode
