#include "libs/broker_client/durable_consumer.h"

#include "absl/strings/str_cat.h"
#include "libs/log/log.h"
#include "libs/status/grpc_status.h"
#include "libs/time/backoff.h"

namespace pettube::broker_client {

DurableConsumer::DurableConsumer(std::shared_ptr<grpc::Channel> channel,
                                 std::string subscription_id,
                                 pettube::broker::v1::Subscription spec,
                                 Subscriber::Options options)
    : channel_(std::move(channel)),
      subscription_id_(std::move(subscription_id)),
      spec_(std::move(spec)),
      options_(std::move(options)) {
  options_.subscription = absl::StrCat("subscriptions/", subscription_id_);
}

DurableConsumer::~DurableConsumer() { Shutdown(options_.shutdown_grace); }

void DurableConsumer::Start(DeliveryHandler handler) {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this, handler = std::move(handler)] { Run(handler); });
}

bool DurableConsumer::consuming() const {
  absl::MutexLock lock(&mu_);
  return subscriber_ != nullptr;
}

void DurableConsumer::Run(DeliveryHandler handler) {
  auto stub = pettube::broker::v1::Broker::NewStub(channel_);
  time::Backoff backoff(time::MakeBackoffPolicy(options_.initial_backoff, options_.max_backoff,
                                                time::Jitter::kEqual));
  int failures = 0;
  while (true) {
    grpc::ClientContext context;
    // Waits for the broker to be reachable instead of failing at once.
    context.set_wait_for_ready(true);
    if (options_.configure_context) options_.configure_context(context);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      creating_ = &context;
    }
    pettube::broker::v1::CreateSubscriptionRequest request;
    request.set_subscription_id(subscription_id_);
    *request.mutable_subscription() = spec_;
    pettube::broker::v1::Subscription created;
    const grpc::Status status = stub->CreateSubscription(&context, request, &created);
    {
      absl::MutexLock lock(&mu_);
      creating_ = nullptr;
      if (stopping_) return;
    }
    if (status.ok() || status.error_code() == grpc::StatusCode::ALREADY_EXISTS) break;
    log::Warning("broker_client.create_subscription_failed",
                 {{"subscription", subscription_id_}, {"code", status::FromGrpcStatus(status)}});
    // A real deadline (backoff), woken early by Shutdown.
    const absl::Duration wait = backoff.Delay(++failures);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
    if (stopping_) return;
  }
  auto subscriber = std::make_unique<Subscriber>(channel_, options_);
  if (absl::Status s = subscriber->Start(std::move(handler)); !s.ok()) {
    log::Error("broker_client.subscriber_start_failed",
               {{"subscription", subscription_id_}, {"code", s}});
    return;
  }
  absl::MutexLock lock(&mu_);
  subscriber_ = std::move(subscriber);
}

void DurableConsumer::Shutdown(absl::Duration grace) {
  std::unique_ptr<Subscriber> subscriber;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (creating_ != nullptr) creating_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
  {
    absl::MutexLock lock(&mu_);
    subscriber = std::move(subscriber_);
  }
  if (subscriber != nullptr) subscriber->Shutdown(grace);
}

}  // namespace pettube::broker_client
