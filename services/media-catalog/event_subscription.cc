#include "services/media-catalog/event_subscription.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/status/grpc_status.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "services/media-catalog/media_event.h"

namespace pettube::catalog {
namespace {

void Prepare(grpc::ClientContext& ctx, const std::function<void(grpc::ClientContext&)>& configure,
             absl::Duration timeout) {
  if (configure) configure(ctx);
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(absl::ToInt64Milliseconds(timeout)));
}

}  // namespace

pettube::broker::v1::Subscription CatalogSubscription(int max_delivery_attempts) {
  pettube::broker::v1::Subscription s;
  auto* any = s.mutable_filter()->mutable_any();
  for (const char* type : {kMediaUploaded, kJobRequested, kJobProgressed, kJobCompleted, kJobFailed,
                           kMediaReady, kMediaFailed, kMediaDeleted, kMediaUpdated}) {
    auto* exact = any->add_filters()->mutable_exact();
    exact->set_attribute("type");
    exact->set_value(type);
  }
  s.set_max_delivery_attempts(max_delivery_attempts);
  s.set_ordering(pettube::broker::v1::ORDERING_NONE);
  s.mutable_dead_letter_policy()->set_enabled(true);
  s.mutable_start_position()->mutable_earliest();
  (*s.mutable_labels())["service"] = "media-catalog";
  return s;
}

absl::Status EnsureSubscription(const std::shared_ptr<grpc::Channel>& broker,
                                const std::function<void(grpc::ClientContext&)>& configure,
                                const std::string& name,
                                const pettube::broker::v1::Subscription& settings,
                                absl::Duration timeout) {
  constexpr absl::string_view kPrefix = "subscriptions/";
  if (!absl::StartsWith(name, kPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("subscription: must be \"subscriptions/{id}\", got \"", name, "\""));
  }
  auto stub = pettube::broker::v1::Broker::NewStub(broker);
  grpc::ClientContext ctx;
  Prepare(ctx, configure, timeout);
  pettube::broker::v1::CreateSubscriptionRequest req;
  req.set_subscription_id(name.substr(kPrefix.size()));
  *req.mutable_subscription() = settings;
  pettube::broker::v1::Subscription created;
  const grpc::Status s = stub->CreateSubscription(&ctx, req, &created);
  if (s.ok()) return absl::OkStatus();
  if (s.error_code() != grpc::ALREADY_EXISTS) {
    return status::FromGrpcStatus(s, absl::StrCat("CreateSubscription ", name));
  }
  // Made by an older catalog: bring its filter up to today's event types.
  grpc::ClientContext update_ctx;
  Prepare(update_ctx, configure, timeout);
  pettube::broker::v1::UpdateSubscriptionRequest update;
  *update.mutable_subscription() = settings;
  update.mutable_subscription()->set_name(name);
  update.mutable_update_mask()->add_paths("filter");
  pettube::broker::v1::Subscription updated;
  return status::FromGrpcStatus(stub->UpdateSubscription(&update_ctx, update, &updated),
                                absl::StrCat("UpdateSubscription ", name));
}

absl::Status Seek(const std::shared_ptr<grpc::Channel>& broker,
                  const std::function<void(grpc::ClientContext&)>& configure,
                  const std::string& name, const pettube::broker::v1::StartPosition& position,
                  absl::Duration timeout) {
  auto stub = pettube::broker::v1::Broker::NewStub(broker);
  grpc::ClientContext ctx;
  Prepare(ctx, configure, timeout);
  pettube::broker::v1::SeekSubscriptionRequest req;
  req.set_name(name);
  *req.mutable_position() = position;
  pettube::broker::v1::Subscription out;
  return status::FromGrpcStatus(stub->SeekSubscription(&ctx, req, &out),
                                absl::StrCat("SeekSubscription ", name));
}

}  // namespace pettube::catalog
