#pragma once

#include <grpcpp/grpcpp.h>

#include "libs/auth/credentials/authenticator.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"
#include "services/broker/broker.h"

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
//   events.publish    Publish, PublishStream
//   events.subscribe  Subscribe, GetSubscription, ListDeadLetters
//   events.subscribe or events.admin  WatchSubscriptionStats (autoscalers
//                     watch queues they do not consume)
//   events.admin      Create/Update/Delete/Seek/List subscriptions,
//                     RedriveDeadLetters, GetStreamInfo
// unless the broker runs without an authenticator (loopback development).
// Thread-safe; `broker` and `authenticator` must outlive the service.
class BrokerService : public BrokerCallbackBase {
 public:
  static constexpr char kPublishScope[] = "events.publish";
  static constexpr char kSubscribeScope[] = "events.subscribe";
  static constexpr char kAdminScope[] = "events.admin";

  // `authenticator` null: no credentials are checked.
  BrokerService(Broker& broker, const auth::Authenticator* authenticator)
      : broker_(broker), authenticator_(authenticator) {}

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
  // OK, or why the caller may not call a method needing `scope`.
  absl::Status Authorize(const grpc::CallbackServerContext* context, absl::string_view scope) const;
  // The caller's credentials' expiry (InfiniteFuture when none are
  // checked), or why it may call none of the methods needing `scopes`.
  absl::StatusOr<absl::Time> AuthorizeAny(const grpc::CallbackServerContext* context,
                                          std::initializer_list<absl::string_view> scopes) const;

  Broker& broker_;
  const auth::Authenticator* const authenticator_;
};

}  // namespace pettube::broker
