#include "services/broker/broker_service.h"

#include <grpcpp/alarm.h>

#include <atomic>
#include <deque>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "libs/log/log.h"
#include "libs/server/unary.h"
#include "libs/status/grpc_status.h"
#include "services/broker/publish_stream_reactor.h"
#include "services/broker/subscribe_reactor.h"
#include "services/broker/watch_stats_reactor.h"

namespace pettube::broker {
namespace {

using status::ToGrpcStatus;

// Finishes a unary call with a core result.
template <typename T>
void Reply(grpc::ServerUnaryReactor* reactor, absl::StatusOr<T> result, T* response) {
  if (result.ok()) *response = std::move(*result);
  reactor->Finish(ToGrpcStatus(result.status()));
}

void Reply(grpc::ServerUnaryReactor* reactor, const absl::Status& status) {
  reactor->Finish(ToGrpcStatus(status));
}

// The bearer token of a call ("" if none).
std::string BearerToken(const grpc::CallbackServerContext& context) {
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) return "";
  return std::string(value);
}

}  // namespace

absl::StatusOr<BrokerService::CallerAccess> BrokerService::Authenticate(
    const grpc::CallbackServerContext* context,
    std::initializer_list<absl::string_view> scopes) const {
  if (authenticator_ == nullptr)
    return CallerAccess{Access::Unchecked(), false, absl::InfiniteFuture()};
  auto caller = authenticator_->Authenticate(*context);
  if (!caller.ok()) return caller.status();
  bool allowed = false;
  for (absl::string_view scope : scopes) allowed |= caller->HasScope(scope);
  if (!allowed) {
    return absl::PermissionDeniedError(absl::StrCat("the access token lacks scope \"",
                                                    absl::StrJoin(scopes, "\" or \""),
                                                    "\" needed for this call"));
  }
  CallerAccess who;
  who.access.identity = caller->identity;
  who.access.admin = caller->HasScope(kAdminScope);
  who.access.checked = true;
  who.workload = caller->workload;
  who.expire = caller->expire_time;
  return who;
}

void BrokerService::WithAccess(const grpc::CallbackServerContext* context,
                               std::initializer_list<absl::string_view> scopes,
                               AccessDone then) const {
  absl::StatusOr<CallerAccess> who = Authenticate(context, scopes);
  // Admins too: the publish policy applies to them as well.
  if (!who.ok() || resolver_ == nullptr || !who->workload) {
    then(std::move(who));
    return;
  }
  // The access policy names workloads by client id: look it up (once per
  // identity). Without it the caller only loses what the policy grants by
  // client id (fail closed), so a lookup failure is logged, not fatal.
  // Copied first: the lambda below takes `who`, and argument order is
  // unspecified.
  const std::string identity = who->access.identity;
  resolver_->Resolve(identity, BearerToken(*context),
                     [who = *std::move(who),
                      then = std::move(then)](absl::StatusOr<std::string> client_id) mutable {
                       if (client_id.ok()) {
                         who.access.client_id = *std::move(client_id);
                       } else {
                         log::Warning(
                             "broker.client_id_unknown",
                             {{"identity", who.access.identity}, {"code", client_id.status()}});
                       }
                       then(std::move(who));
                     });
}

grpc::ServerUnaryReactor* BrokerService::Publish(grpc::CallbackServerContext* context,
                                                 const v1::PublishRequest* request,
                                                 v1::PublishResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (request->events_size() == 0) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError("events: must not be empty")));
    return reactor;
  }
  if (request->events_size() > kMaxBatch) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "events: at most ", kMaxBatch, " per request, got ", request->events_size()))));
    return reactor;
  }
  WithAccess(context, {kPublishScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               std::vector<CloudEvent> events(request->events().begin(), request->events().end());
               broker_.Publish(
                   std::move(events),
                   [reactor, response](std::vector<v1::PublishResult> results) {
                     for (auto& r : results) *response->add_results() = std::move(r);
                     reactor->Finish(grpc::Status::OK);
                   },
                   who->access);
             });
  return reactor;
}

grpc::ServerBidiReactor<v1::PublishStreamRequest, v1::PublishStreamResponse>*
BrokerService::PublishStream(grpc::CallbackServerContext* context) {
  auto* reactor = new PublishStreamReactor(broker_);
  WithAccess(context, {kPublishScope}, [reactor](absl::StatusOr<CallerAccess> who) {
    if (!who.ok()) return reactor->Refuse(who.status());
    reactor->Begin(who->access, who->expire);
  });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::CreateSubscription(
    grpc::CallbackServerContext* context, const v1::CreateSubscriptionRequest* request,
    v1::Subscription* response) {
  auto* reactor = context->DefaultReactor();
  // events.subscribe suffices: a service creates the subscription it
  // consumes, and owns it.
  auto who = Authenticate(context, {kSubscribeScope, kAdminScope});
  if (!who.ok()) {
    Reply(reactor, who.status());
  } else {
    // Finished from the committer's completion: no gRPC thread waits for
    // the fsync.
    broker_.CreateSubscription(request->subscription_id(), request->subscription(), who->access,
                               [reactor, response](absl::StatusOr<v1::Subscription> created) {
                                 Reply(reactor, std::move(created), response);
                               });
  }
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::GetSubscription(grpc::CallbackServerContext* context,
                                                         const v1::GetSubscriptionRequest* request,
                                                         v1::Subscription* response) {
  auto* reactor = context->DefaultReactor();
  auto who = Authenticate(context, {kSubscribeScope, kAdminScope});
  if (!who.ok()) {
    Reply(reactor, who.status());
  } else {
    Reply(reactor, broker_.GetSubscription(request->name()), response);
  }
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::ListSubscriptions(
    grpc::CallbackServerContext* context, const v1::ListSubscriptionsRequest* request,
    v1::ListSubscriptionsResponse* response) {
  auto* reactor = context->DefaultReactor();
  auto who = Authenticate(context, {kAdminScope});
  if (!who.ok()) {
    Reply(reactor, who.status());
  } else {
    Reply(reactor, broker_.ListSubscriptions(request->page_size(), request->page_token()),
          response);
  }
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::UpdateSubscription(
    grpc::CallbackServerContext* context, const v1::UpdateSubscriptionRequest* request,
    v1::Subscription* response) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               std::vector<std::string> paths(request->update_mask().paths().begin(),
                                              request->update_mask().paths().end());
               broker_.UpdateSubscription(request->subscription(), paths, who->access,
                                          [reactor, response](absl::StatusOr<v1::Subscription> r) {
                                            Reply(reactor, std::move(r), response);
                                          });
             });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::DeleteSubscription(
    grpc::CallbackServerContext* context, const v1::DeleteSubscriptionRequest* request,
    google::protobuf::Empty*) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               broker_.DeleteSubscription(request->name(), who->access,
                                          [reactor](absl::Status s) { Reply(reactor, s); });
             });
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BrokerService::Subscribe(
    grpc::CallbackServerContext* context) {
  auto* reactor = new SubscribeReactor(broker_);
  WithAccess(context, {kSubscribeScope, kAdminScope}, [reactor](absl::StatusOr<CallerAccess> who) {
    if (!who.ok()) return reactor->Refuse(who.status());
    reactor->Begin(who->access, who->expire);
  });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::SeekSubscription(
    grpc::CallbackServerContext* context, const v1::SeekSubscriptionRequest* request,
    v1::Subscription* response) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               broker_.Seek(request->name(), request->position(), who->access,
                            [reactor, response](absl::StatusOr<v1::Subscription> r) {
                              Reply(reactor, std::move(r), response);
                            });
             });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::ListDeadLetters(grpc::CallbackServerContext* context,
                                                         const v1::ListDeadLettersRequest* request,
                                                         v1::ListDeadLettersResponse* response) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               broker_.ListDeadLetters(
                   request->subscription(), request->page_size(), request->page_token(),
                   who->access, [reactor, response](absl::StatusOr<v1::ListDeadLettersResponse> r) {
                     Reply(reactor, std::move(r), response);
                   });
             });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::RedriveDeadLetters(
    grpc::CallbackServerContext* context, const v1::RedriveDeadLettersRequest* request,
    v1::RedriveDeadLettersResponse* response) {
  auto* reactor = context->DefaultReactor();
  WithAccess(context, {kSubscribeScope, kAdminScope},
             [this, reactor, request, response](absl::StatusOr<CallerAccess> who) {
               if (!who.ok()) return Reply(reactor, who.status());
               // Finished when the last chunk is written; the rate limit is a
               // timer between chunks, not a waiting thread.
               broker_.Redrive(request->subscription(), request->max_events(),
                               request->max_per_second(), who->access,
                               [reactor, response](absl::StatusOr<int64_t> moved) {
                                 if (!moved.ok()) return Reply(reactor, moved.status());
                                 response->set_redriven(*moved);
                                 Reply(reactor, absl::OkStatus());
                               });
             });
  return reactor;
}

grpc::ServerUnaryReactor* BrokerService::GetStreamInfo(grpc::CallbackServerContext* context,
                                                       const v1::GetStreamInfoRequest*,
                                                       v1::StreamInfo* response) {
  auto* reactor = context->DefaultReactor();
  auto who = Authenticate(context, {kAdminScope});
  if (!who.ok()) {
    Reply(reactor, who.status());
  } else {
    Reply(reactor, broker_.GetStreamInfo(), response);
  }
  return reactor;
}

grpc::ServerWriteReactor<v1::SubscriptionStats>* BrokerService::WatchSubscriptionStats(
    grpc::CallbackServerContext* context, const v1::WatchSubscriptionStatsRequest* request) {
  // Autoscalers watch queues they do not own: no owner check.
  auto who = Authenticate(context, {kSubscribeScope, kAdminScope});
  if (!who.ok()) {
    struct Refused : grpc::ServerWriteReactor<v1::SubscriptionStats> {
      explicit Refused(const absl::Status& s) { Finish(ToGrpcStatus(s)); }
      void OnDone() override { delete this; }
    };
    return new Refused(who.status());
  }
  return WatchStatsReactor::Start(broker_, *request, who->expire);
}

}  // namespace pettube::broker
