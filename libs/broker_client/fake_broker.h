#pragma once

// An in-process stand-in for the PetTube broker, for tests of code that
// publishes or subscribes. Implements Publish, PublishStream and Subscribe
// with the real API's contract where a client can observe it: the real
// broker's event and name validation (//services/broker:event_validation,
// shared, so the two cannot drift), source + id dedup, per-event results,
// lease ids shaped like the real ones, credits, leases (with expiry and extension),
// ack, nack (redelivered at once, ignoring retry policy), release of a
// closed stream's leases, bad stream requests answered with request_error.
// Everything else answers UNIMPLEMENTED. Faults can be injected (broken
// streams, held acks, refused events) and everything the clients did is
// counted.
//
//   auto server = pettube::broker_client::FakeBrokerServer::Start();
//   server->broker().AddSubscription("subscriptions/s");
//   Publisher publisher(server->NewChannel());
//   ASSERT_TRUE(server->broker().WaitUntil(
//       [](const FakeBroker::Stats& s) { return s.stored == 10; }, absl::Seconds(5)));

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/io/cloudevents/v1/cloudevents.pb.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube::broker_client {

// The fake Broker service. Owned by FakeBrokerServer, which must stop
// serving before it is destroyed. Thread-safe: one mutex guards all state,
// and gRPC operations are started under it (gRPC 1.51 never runs reactions
// inline from them).
class FakeBroker final : public pettube::broker::v1::Broker::CallbackService {
 public:
  // What clients did, since start.
  struct Stats {
    // Publishing.
    int64_t publish_requests = 0;  // unary calls plus stream messages
    int64_t events_received = 0;   // events in them, duplicates included
    int64_t stored = 0;            // distinct events appended to the log
    int64_t duplicates = 0;        // events refused as already stored
    int64_t refused = 0;           // events answered with an error
    int64_t publish_streams = 0;   // PublishStream calls
    int64_t max_unacked = 0;       // most events unacked on one stream
    // Subscribing.
    int64_t attaches = 0;
    int64_t deliveries = 0;
    int64_t redeliveries = 0;  // deliveries with attempt > 1
    int64_t acks = 0;
    int64_t nacks = 0;
    int64_t extends = 0;
    int64_t refused_settlements = 0;  // unknown, expired or foreign leases
    int64_t refused_requests = 0;     // answered with request_error
    int64_t settle_messages = 0;
    int64_t max_settle_batch = 0;  // most settlements in one Settle message
    int64_t flow_messages = 0;
    int64_t credits_granted = 0;  // by Flow (Attach not included)
    int64_t released = 0;         // leases freed by a closed stream
    int64_t expired = 0;          // leases that ran out
    int64_t max_leased = 0;       // most leases one stream held at once
    std::vector<std::string> nack_errors;
  };

  // The real broker's default --max_event_bytes.
  static constexpr size_t kMaxEventBytes = 1 << 20;

  FakeBroker();
  ~FakeBroker() override;

  // --- Set-up and fault injection.

  // A subscription receiving every event, stored earlier or later. `name`
  // should be "subscriptions/{id}": attaching to any other is refused as by
  // the real broker.
  void AddSubscription(absl::string_view name, absl::Duration ack_deadline = absl::Seconds(30));
  // Events for which `rule` is not OK are refused with its status (after
  // the real broker's validation, before dedup).
  void SetEventRule(std::function<absl::Status(const io::cloudevents::v1::CloudEvent&)> rule);
  // After `stored_events` more events are stored, the PublishStream that
  // stored the last of them ends with UNAVAILABLE before acking any event
  // of that request, and ignores the rest of it: stored but unacked.
  void BreakPublishStreamAfter(int stored_events);
  // While held, stream acks are kept back (events are stored at once).
  void HoldPublishAcks();
  void ReleasePublishAcks();
  // Ends every Subscribe stream with UNAVAILABLE; its leases are released.
  void BreakSubscribeStreams();
  // Appends an event directly, as if published; returns its sequence.
  uint64_t Append(const io::cloudevents::v1::CloudEvent& event);

  // --- Observation.

  Stats GetStats();
  // Waits until `done(stats)` holds (evaluated whenever state changes);
  // false after `timeout`.
  bool WaitUntil(const std::function<bool(const Stats&)>& done, absl::Duration timeout);
  // Events of the log, in sequence order.
  std::vector<io::cloudevents::v1::CloudEvent> StoredEvents();
  // Every (source, id) received on PublishStream or Publish, with repeats.
  std::vector<std::pair<std::string, std::string>> ReceivedKeys();
  // Extensions received for the lease.
  int ExtendsOf(const std::string& lease_id);

  // --- The service.

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* context,
                                    const pettube::broker::v1::PublishRequest* request,
                                    pettube::broker::v1::PublishResponse* response) override;
  grpc::ServerBidiReactor<pettube::broker::v1::PublishStreamRequest,
                          pettube::broker::v1::PublishStreamResponse>*
  PublishStream(grpc::CallbackServerContext* context) override;
  grpc::ServerBidiReactor<pettube::broker::v1::SubscribeRequest,
                          pettube::broker::v1::SubscribeResponse>*
  Subscribe(grpc::CallbackServerContext* context) override;

 private:
  class PublishReactor;
  class SubscribeReactor;
  template <typename Request, typename Response>
  class StreamBase;

  struct Lease {
    std::string subscription;
    uint64_t sequence = 0;
    SubscribeReactor* consumer = nullptr;
    absl::Time deadline;
  };
  struct Subscription {
    uint64_t id = 0;
    std::string name;
    absl::Duration ack_deadline;
    // Sequences waiting for a consumer (new ones and redeliveries).
    std::deque<uint64_t> ready;
    absl::flat_hash_map<uint64_t, int> attempts;
    std::vector<SubscribeReactor*> consumers;
    size_t next_consumer = 0;
  };

  pettube::broker::v1::PublishResult StoreLocked(const io::cloudevents::v1::CloudEvent& event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchLocked(Subscription& subscription) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseConsumerLocked(SubscribeReactor* consumer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnPublishRead(PublishReactor* reactor, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void OnSubscribeRead(SubscribeReactor* reactor, bool ok) ABSL_LOCKS_EXCLUDED(mu_);
  void ExpireLeases() ABSL_LOCKS_EXCLUDED(mu_);

  absl::Mutex mu_;
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<io::cloudevents::v1::CloudEvent> log_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> publish_times_ ABSL_GUARDED_BY(mu_);
  // "source\0id" -> sequence.
  absl::flat_hash_map<std::string, uint64_t> dedup_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::string>> received_keys_ ABSL_GUARDED_BY(mu_);
  std::function<absl::Status(const io::cloudevents::v1::CloudEvent&)> rule_ ABSL_GUARDED_BY(mu_);
  int break_after_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_acks_ ABSL_GUARDED_BY(mu_) = false;

  absl::flat_hash_map<std::string, Subscription> subscriptions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> extends_by_lease_ ABSL_GUARDED_BY(mu_);
  uint64_t next_lease_ ABSL_GUARDED_BY(mu_) = 0;
  // Bumped whenever a lease deadline is set: wakes the expiry thread.
  uint64_t lease_epoch_ ABSL_GUARDED_BY(mu_) = 0;

  absl::flat_hash_set<PublishReactor*> publish_streams_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<SubscribeReactor*> subscribe_streams_ ABSL_GUARDED_BY(mu_);
  // Reactors not yet done; the destructor waits for 0.
  int live_reactors_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread expiry_thread_;
};

// A gRPC server on 127.0.0.1 (port chosen by the OS) serving a FakeBroker.
// Owns both; the destructor stops serving (cancelling open streams), then
// destroys the broker.
class FakeBrokerServer {
 public:
  static absl::StatusOr<std::unique_ptr<FakeBrokerServer>> Start();
  ~FakeBrokerServer();

  FakeBroker& broker() { return *broker_; }
  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  // A new insecure channel to the server.
  std::shared_ptr<grpc::Channel> NewChannel() const;

 private:
  FakeBrokerServer() = default;

  std::unique_ptr<FakeBroker> broker_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace pettube::broker_client
