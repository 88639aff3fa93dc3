#pragma once

#include <grpcpp/grpcpp.h>

#include "libs/auth/credentials/authenticator.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "services/broker/broker.h"
#include "services/broker/client_id_resolver.h"

namespace pettube::broker {

// Every method uses the callback API; Subscribe is registered raw (bytes
// in, bytes out) so deliveries can carry stored events without re-encoding.
using BrokerCallbackBase = v1::Broker::WithCallbackMethod_Publish<
    v1::Broker::WithCallbackMethod_PublishStream<v1::Broker::WithCallbackMethod_CreateSubscription<
        v1::Broker::WithCallbackMethod_GetSubscription<
            v1::Broker::WithCallbackMethod_ListSubscriptions<
                v1::Broker::WithCallbackMethod_UpdateSubscription<
                    v1::Broker::WithCallbackMethod_DeleteSubscription<
                        v1::Broker::WithRawCallbackMethod_Subscribe<
                            v1::Broker::WithCallbackMethod_SeekSubscription<
                                v1::Broker::WithCallbackMethod_ListDeadLetters<
                                    v1::Broker::WithCallbackMethod_RedriveDeadLetters<
                                        v1::Broker::WithCallbackMethod_GetStreamInfo<
                                            v1::Broker::WithCallbackMethod_WatchSubscriptionStats<
                                                v1::Broker::Service>>>>>>>>>>>>>;

// The gRPC face of the Broker: proto in, core call, status out. Streams use
// the callback API with one reactor per call; reactors never block.
//
// Every call needs a PetTube access token with the method's scope:
//   events.publish    Publish, PublishStream (and the publish policy's
//                     binding of the caller to event types and sources)
//   events.subscribe or events.admin
//                     CreateSubscription (the caller becomes its owner),
//                     GetSubscription, WatchSubscriptionStats (autoscalers
//                     watch queues they do not own); and, for the owner, a
//                     workload the policy grants the subscription to, or an
//                     admin: Subscribe, Update/Delete/SeekSubscription,
//                     ListDeadLetters, RedriveDeadLetters
//   events.admin      ListSubscriptions, GetStreamInfo
// unless the broker runs without an authenticator (loopback development).
// Long streams (Subscribe, PublishStream, WatchSubscriptionStats) end with
// UNAUTHENTICATED when the caller's token expires; clients reconnect with
// a fresh one.
// Thread-safe; `broker`, `authenticator` and `resolver` must outlive the
// service.
class BrokerService : public BrokerCallbackBase {
 public:
  static constexpr char kPublishScope[] = "events.publish";
  static constexpr char kSubscribeScope[] = "events.subscribe";
  static constexpr char kAdminScope[] = "events.admin";

  // `authenticator` null: no credentials are checked. `resolver` (may be
  // null) looks up callers' workload client ids for the access policy.
  BrokerService(Broker& broker, const auth::Authenticator* authenticator,
                ClientIdResolver* resolver = nullptr)
      : broker_(broker), authenticator_(authenticator), resolver_(resolver) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const v1::PublishRequest* request,
                                    v1::PublishResponse* response) override;
  grpc::ServerBidiReactor<v1::PublishStreamRequest, v1::PublishStreamResponse>* PublishStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* CreateSubscription(grpc::CallbackServerContext* context,
                                               const v1::CreateSubscriptionRequest* request,
                                               v1::Subscription* response) override;
  grpc::ServerUnaryReactor* GetSubscription(grpc::CallbackServerContext* context,
                                            const v1::GetSubscriptionRequest* request,
                                            v1::Subscription* response) override;
  grpc::ServerUnaryReactor* ListSubscriptions(grpc::CallbackServerContext* context,
                                              const v1::ListSubscriptionsRequest* request,
                                              v1::ListSubscriptionsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateSubscription(grpc::CallbackServerContext* context,
                                               const v1::UpdateSubscriptionRequest* request,
                                               v1::Subscription* response) override;
  grpc::ServerUnaryReactor* DeleteSubscription(grpc::CallbackServerContext* context,
                                               const v1::DeleteSubscriptionRequest* request,
                                               google::protobuf::Empty* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* SeekSubscription(grpc::CallbackServerContext* context,
                                             const v1::SeekSubscriptionRequest* request,
                                             v1::Subscription* response) override;
  grpc::ServerUnaryReactor* ListDeadLetters(grpc::CallbackServerContext* context,
                                            const v1::ListDeadLettersRequest* request,
                                            v1::ListDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* RedriveDeadLetters(grpc::CallbackServerContext* context,
                                               const v1::RedriveDeadLettersRequest* request,
                                               v1::RedriveDeadLettersResponse* response) override;
  grpc::ServerUnaryReactor* GetStreamInfo(grpc::CallbackServerContext* context,
                                          const v1::GetStreamInfoRequest* request,
                                          v1::StreamInfo* response) override;

  grpc::ServerWriteReactor<v1::SubscriptionStats>* WatchSubscriptionStats(
      grpc::CallbackServerContext* context,
      const v1::WatchSubscriptionStatsRequest* request) override;

  // Largest number of events in one Publish request.
  static constexpr int kMaxBatch = 1000;

 private:
  struct CallerAccess {
    Access access;
    bool workload = false;
    // When the caller's token expires (InfiniteFuture unchecked).
    absl::Time expire = absl::InfiniteFuture();
  };
  using AccessDone = std::function<void(absl::StatusOr<CallerAccess>)>;

  // The caller, or why it may call none of the methods needing `scopes`
  // (UNAUTHENTICATED, PERMISSION_DENIED). Without its client id.
  absl::StatusOr<CallerAccess> Authenticate(const grpc::CallbackServerContext* context,
                                            std::initializer_list<absl::string_view> scopes) const;
  // As Authenticate, then looks up a workload's client id (when a resolver
  // is set): `then` runs inline or, on the first call of a workload, later
  // on a gRPC thread.
  void WithAccess(const grpc::CallbackServerContext* context,
                  std::initializer_list<absl::string_view> scopes, AccessDone then) const;

  Broker& broker_;
  const auth::Authenticator* const authenticator_;
  ClientIdResolver* const resolver_;
};

}  // namespace pettube::broker
