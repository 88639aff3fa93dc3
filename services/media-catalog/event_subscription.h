#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/pettube/broker/v1/broker.pb.h"

namespace pettube::catalog {

// The catalog's durable subscription: every media and transcode event type
// the projection applies, unordered (the merge rules make order irrelevant,
// so one media item's stuck event never holds back another's), dead
// letters on.
pettube::broker::v1::Subscription CatalogSubscription(int max_delivery_attempts);

// Creates `name` ("subscriptions/{id}") with `settings` on the broker; an
// existing one is fine (ALREADY_EXISTS, settings untouched). Waits for the
// broker to be reachable until `timeout` (wait-for-ready, no polling).
absl::Status EnsureSubscription(const std::shared_ptr<grpc::Channel>& broker,
                                const std::function<void(grpc::ClientContext&)>& configure,
                                const std::string& name,
                                const pettube::broker::v1::Subscription& settings,
                                absl::Duration timeout);

// Moves the subscription's cursor to `position`: earliest for a rebuild,
// a time for replaying what came after a restored backup.
absl::Status Seek(const std::shared_ptr<grpc::Channel>& broker,
                  const std::function<void(grpc::ClientContext&)>& configure,
                  const std::string& name, const pettube::broker::v1::StartPosition& position,
                  absl::Duration timeout);

}  // namespace pettube::catalog
