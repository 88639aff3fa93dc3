#include "services/transcode-coordinator/subscriptions.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "libs/status/grpc_status.h"
#include "libs/time/proto_time.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube::transcode {
namespace {

namespace bv = ::pettube::broker::v1;

void TypeIs(bv::Filter* f, const char* type) {
  f->mutable_exact()->set_attribute("type");
  f->mutable_exact()->set_value(type);
}

}  // namespace

bv::Subscription CoordinatorSubscription() {
  bv::Subscription s;
  auto* any = s.mutable_filter()->mutable_any();
  for (const char* type : {"pettube.media.uploaded", "pettube.transcode.job.progressed",
                           "pettube.transcode.job.completed", "pettube.transcode.job.failed",
                           "pettube.media.deleted"}) {
    TypeIs(any->add_filters(), type);
  }
  // Uploads committed before our first start are not missed.
  s.mutable_start_position()->mutable_earliest();
  *s.mutable_ack_deadline() = time::ToProto(absl::Seconds(60));
  s.set_max_delivery_attempts(20);
  s.mutable_retry_policy()->mutable_min_backoff()->set_seconds(1);
  s.mutable_retry_policy()->mutable_max_backoff()->set_seconds(60);
  s.mutable_dead_letter_policy()->set_enabled(true);
  (*s.mutable_labels())["owner"] = "transcode-coordinator";
  return s;
}

bv::Subscription JobsSubscription(const WorkQueueOptions& options) {
  bv::Subscription s;
  TypeIs(s.mutable_filter(), "pettube.transcode.job.requested");
  s.mutable_start_position()->mutable_earliest();
  *s.mutable_ack_deadline() = time::ToProto(options.ack_deadline);
  s.set_max_delivery_attempts(options.max_delivery_attempts);
  *s.mutable_retry_policy()->mutable_min_backoff() = time::ToProto(options.min_backoff);
  *s.mutable_retry_policy()->mutable_max_backoff() = time::ToProto(options.max_backoff);
  s.mutable_dead_letter_policy()->set_enabled(true);
  (*s.mutable_labels())["owner"] = "transcode-coordinator";
  return s;
}

absl::Status EnsureSubscriptions(std::shared_ptr<grpc::Channel> broker,
                                 const std::function<void(grpc::ClientContext&)>& configure,
                                 const WorkQueueOptions& options, absl::Duration timeout) {
  auto stub = bv::Broker::NewStub(broker);
  const absl::Time deadline = absl::Now() + timeout;
  for (const auto& [name, settings] :
       {std::make_pair(std::string(kCoordinatorSubscription), CoordinatorSubscription()),
        std::make_pair(std::string(kJobsSubscription), JobsSubscription(options))}) {
    bv::CreateSubscriptionRequest request;
    request.set_subscription_id(std::string(absl::StripPrefix(name, "subscriptions/")));
    *request.mutable_subscription() = settings;
    grpc::ClientContext context;
    // Waits for the broker to come up instead of failing at once.
    context.set_wait_for_ready(true);
    context.set_deadline(absl::ToChronoTime(deadline));
    if (configure) configure(context);
    bv::Subscription created;
    grpc::Status s = stub->CreateSubscription(&context, request, &created);
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return status::FromGrpcStatus(s, absl::StrCat("CreateSubscription ", name));
    }
  }
  return absl::OkStatus();
}

}  // namespace pettube::transcode
