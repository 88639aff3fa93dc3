// The broker under chaos, over the real binary (issue 13): 4 PublishStream
// producers with fixed event ids, 3 competing consumers with confirmed
// settlements acking out of order, nacking 10% with a delay and letting 5%
// expire, consumers of a replayed and a filtered subscription, and an admin
// loop seeking the replayed subscription to earliest and redriving; the
// broker is SIGKILLed at random moments, 20 rounds. Afterwards:
//   - every publisher-acked id reached every matching subscription;
//   - republishing any acked id answers duplicate with the same sequence;
//   - the backlog equals what was not settled (between what was surely
//     and what was possibly acked when the broker died), and 0 once the
//     rest is acked.
// Bounded in time: about 30 s on two cores.

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/service_process.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube {
namespace {

using io::cloudevents::v1::CloudEvent;
using ::pettube::testing::NewTempDir;
using ::pettube::testing::ServiceBinary;
using ::pettube::testing::ServiceProcess;
namespace v1 = ::pettube::broker::v1;

constexpr int kProducers = 4;
constexpr int kRounds = 20;
constexpr int kNewPerRound = 15;  // per producer: 1200 events in all
constexpr int kConsumers = 3;
constexpr char kTypeA[] = "pettube.chaos.a";
constexpr char kTypeB[] = "pettube.chaos.b";

std::chrono::system_clock::time_point In(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

std::string IdOf(int producer, int n) { return absl::StrCat("p", producer, "-", n); }

CloudEvent EventFor(const std::string& id) {
  CloudEvent e;
  e.set_id(id);
  e.set_source("//chaos");
  e.set_spec_version("1.0");
  // Every third event is type B: the filtered subscription must not get it.
  const int n = std::stoi(id.substr(id.find('-') + 1));
  e.set_type(n % 3 == 0 ? kTypeB : kTypeA);
  e.set_text_data(std::string(200, 'c'));
  return e;
}

// What the clients learned, across every round.
struct Ledger {
  absl::Mutex mu;
  // Publisher-acked ids and the sequence the broker gave each.
  std::map<std::string, uint64_t> published ABSL_GUARDED_BY(mu);
  bool sequence_mismatch ABSL_GUARDED_BY(mu) = false;
  // Per producer: ids handed out and not yet publisher-acked.
  std::set<std::string> unacked[kProducers] ABSL_GUARDED_BY(mu);
  int next[kProducers] ABSL_GUARDED_BY(mu) = {};
  // "work": ids delivered at all, acks confirmed OK, acks sent but not
  // confirmed when the stream died.
  std::set<std::string> work_delivered ABSL_GUARDED_BY(mu);
  std::set<std::string> work_acked ABSL_GUARDED_BY(mu);
  std::set<std::string> work_ack_unconfirmed ABSL_GUARDED_BY(mu);
  std::set<std::string> replay_delivered ABSL_GUARDED_BY(mu);
  std::set<std::string> filtered_delivered ABSL_GUARDED_BY(mu);
  // What the chaos did, for the summary line.
  int64_t deliveries ABSL_GUARDED_BY(mu) = 0;
  int64_t redeliveries ABSL_GUARDED_BY(mu) = 0;
  int64_t nacks ABSL_GUARDED_BY(mu) = 0;
  int64_t expiries ABSL_GUARDED_BY(mu) = 0;
  int64_t publish_acks ABSL_GUARDED_BY(mu) = 0;
  int64_t resent ABSL_GUARDED_BY(mu) = 0;
};

class Broker {
 public:
  explicit Broker(const std::string& data) {
    ServiceProcess::Options options;
    options.binary = ServiceBinary("broker");
    options.data_dir = data;
    auto service = ServiceProcess::Start(std::move(options));
    EXPECT_TRUE(service.ok()) << service.status();
    if (service.ok()) service_ = std::move(*service);
    channel_ =
        grpc::CreateChannel(service_ ? service_->grpc() : "", grpc::InsecureChannelCredentials());
  }
  std::unique_ptr<v1::Broker::Stub> Stub() { return v1::Broker::NewStub(channel_); }
  void Kill() { EXPECT_TRUE(service_ && service_->Kill().ok()); }

 private:
  std::unique_ptr<ServiceProcess> service_;
  std::shared_ptr<grpc::Channel> channel_;
};

// One producer's stream for a round: resends what is unacked, then up to
// `fresh` new ids, one every 40 ms while `pace` is not notified (so kills
// land mid-stream; null: all at once); acks are recorded. Ends when the
// stream does.
void Produce(v1::Broker::Stub& stub, Ledger& ledger, int p, int fresh, absl::Duration deadline,
             absl::Notification* pace) {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&ledger.mu);
    ids.assign(ledger.unacked[p].begin(), ledger.unacked[p].end());
    ledger.resent += static_cast<int64_t>(ids.size());
    for (int i = 0; i < fresh; ++i) {
      const std::string id = IdOf(p, ledger.next[p]++);
      ledger.unacked[p].insert(id);
      ids.push_back(id);
    }
  }
  if (ids.empty()) return;
  grpc::ClientContext ctx;
  ctx.set_deadline(In(deadline));
  auto stream = stub.PublishStream(&ctx);
  const size_t resends = ids.size() - static_cast<size_t>(fresh);
  std::thread writer([&] {
    for (size_t i = 0; i < ids.size();) {
      // Resends go in one batch; new ids one at a time when paced.
      const size_t n = i < resends ? resends - i : (pace == nullptr ? ids.size() - i : 1);
      v1::PublishStreamRequest req;
      for (size_t j = i; j < i + n; ++j) {
        auto* e = req.add_events();
        e->set_client_sequence(j);
        *e->mutable_event() = EventFor(ids[j]);
      }
      i += n;
      if (!stream->Write(req)) return;
      if (pace != nullptr && i > resends &&
          pace->WaitForNotificationWithTimeout(absl::Milliseconds(40))) {
        break;
      }
    }
    stream->WritesDone();
  });
  v1::PublishStreamResponse resp;
  while (stream->Read(&resp)) {
    absl::MutexLock lock(&ledger.mu);
    for (const auto& a : resp.acks()) {
      if (a.result().status().code() != 0) continue;
      const std::string& id = ids[a.client_sequence()];
      auto [it, inserted] = ledger.published.emplace(id, a.result().sequence());
      if (!inserted && it->second != a.result().sequence()) ledger.sequence_mismatch = true;
      ledger.unacked[p].erase(id);
      ++ledger.publish_acks;
    }
  }
  writer.join();
  stream->Finish();
}

enum class Mode { kChaos, kAckAll };

// A consumer of `subscription` until its stream ends. kChaos: acks out of
// order, nacks 10% with a delay, lets 5% expire; kAckAll: acks everything.
void Consume(v1::Broker::Stub& stub, Ledger& ledger, const std::string& subscription, Mode mode,
             uint32_t seed, absl::Duration deadline, const std::function<bool()>& enough) {
  std::mt19937 rng(seed);
  grpc::ClientContext ctx;
  ctx.set_deadline(In(deadline));
  auto stream = stub.Subscribe(&ctx);
  v1::SubscribeRequest attach;
  attach.mutable_attach()->set_subscription(subscription);
  attach.mutable_attach()->set_max_in_flight(20);
  attach.mutable_attach()->set_consumer(absl::StrCat("c", seed));
  attach.mutable_attach()->set_confirm_settlements(true);
  if (!stream->Write(attach)) return;
  std::map<std::string, std::string> id_of_lease;   // deliveries held
  std::map<std::string, std::string> acks_pending;  // lease -> id, sent, unconfirmed
  std::vector<std::string> to_ack;                  // held, to be acked later
  v1::SubscribeResponse r;
  while (stream->Read(&r)) {
    v1::SubscribeRequest settle;
    int credits = 0;
    if (r.has_settle_results()) {
      absl::MutexLock lock(&ledger.mu);
      for (const auto& result : r.settle_results().results()) {
        if (result.kind() != v1::ACK) continue;
        auto it = acks_pending.find(result.lease_id());
        if (it == acks_pending.end()) continue;
        if (result.status().code() == 0 && subscription == "subscriptions/work") {
          ledger.work_acked.insert(it->second);
          ledger.work_ack_unconfirmed.erase(it->second);
        }
        acks_pending.erase(it);
      }
    }
    if (r.has_deliveries()) {
      absl::MutexLock lock(&ledger.mu);
      for (const auto& d : r.deliveries().deliveries()) {
        const std::string& id = d.event().id();
        ++ledger.deliveries;
        if (d.attempt() > 1) ++ledger.redeliveries;
        if (subscription == "subscriptions/work") ledger.work_delivered.insert(id);
        if (subscription == "subscriptions/replay") ledger.replay_delivered.insert(id);
        if (subscription == "subscriptions/filtered") ledger.filtered_delivered.insert(id);
        const int roll = static_cast<int>(rng() % 100);
        if (mode == Mode::kChaos && roll < 10) {
          v1::Nack* n = settle.mutable_settle()->add_nacks();
          n->set_lease_id(d.lease_id());
          n->set_error("chaos nack");
          n->mutable_delay()->set_nanos(100 * 1000 * 1000);
          ++credits;
          ++ledger.nacks;
        } else if (mode == Mode::kChaos && roll < 15) {
          ++credits;  // never settled: its lease expires
          ++ledger.expiries;
        } else {
          id_of_lease[d.lease_id()] = id;
          to_ack.push_back(d.lease_id());
        }
      }
    }
    // Out of order: a random part of what is held, shuffled.
    std::shuffle(to_ack.begin(), to_ack.end(), rng);
    const size_t take = mode == Mode::kAckAll ? to_ack.size() : (to_ack.size() + 1) / 2;
    {
      absl::MutexLock lock(&ledger.mu);
      for (size_t i = 0; i < take; ++i) {
        const std::string lease = to_ack.back();
        to_ack.pop_back();
        settle.mutable_settle()->add_acks(lease);
        acks_pending[lease] = id_of_lease[lease];
        if (subscription == "subscriptions/work") {
          ledger.work_ack_unconfirmed.insert(id_of_lease[lease]);
        }
        id_of_lease.erase(lease);
        ++credits;
      }
    }
    if (settle.has_settle() && !stream->Write(settle)) break;
    if (credits > 0) {
      v1::SubscribeRequest flow;
      flow.mutable_flow()->set_credits(credits);
      if (!stream->Write(flow)) break;
    }
    if (enough && enough()) break;
  }
  ctx.TryCancel();
  stream->Finish();
}

// Seeks "replay" to earliest and redrives "work", over and over, until
// `stop`; paced by `stop` itself.
void Administer(v1::Broker::Stub& stub, absl::Notification& stop) {
  while (!stop.HasBeenNotified()) {
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(In(absl::Seconds(2)));
      v1::SeekSubscriptionRequest req;
      req.set_name("subscriptions/replay");
      req.mutable_position()->mutable_earliest();
      v1::Subscription sub;
      (void)stub.SeekSubscription(&ctx, req, &sub);
    }
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(In(absl::Seconds(2)));
      v1::RedriveDeadLettersRequest req;
      req.set_subscription("subscriptions/work");
      req.set_max_per_second(1000);
      v1::RedriveDeadLettersResponse resp;
      (void)stub.RedriveDeadLetters(&ctx, req, &resp);
    }
    stop.WaitForNotificationWithTimeout(absl::Milliseconds(150));
  }
}

v1::Subscription Get(v1::Broker::Stub& stub, const std::string& name) {
  grpc::ClientContext ctx;
  ctx.set_deadline(In(absl::Seconds(10)));
  v1::GetSubscriptionRequest req;
  req.set_name(name);
  v1::Subscription sub;
  EXPECT_TRUE(stub.GetSubscription(&ctx, req, &sub).ok()) << name;
  return sub;
}

TEST(BrokerChaosTest, NoAckedEventIsLostOrDuplicatedAcrossRandomKills) {
  const std::string data = NewTempDir("data");
  Ledger ledger;
  {
    Broker broker(data);
    auto stub = broker.Stub();
    auto create = [&](const std::string& id, v1::Subscription s) {
      grpc::ClientContext ctx;
      ctx.set_deadline(In(absl::Seconds(10)));
      v1::CreateSubscriptionRequest req;
      req.set_subscription_id(id);
      *req.mutable_subscription() = std::move(s);
      v1::Subscription out;
      const grpc::Status st = stub->CreateSubscription(&ctx, req, &out);
      ASSERT_TRUE(st.ok()) << id << ": " << st.error_message();
    };
    v1::Subscription work;
    work.mutable_ack_deadline()->set_seconds(1);
    work.set_max_delivery_attempts(4);  // some dead-letter; the admin redrives them
    work.mutable_retry_policy()->mutable_min_backoff()->set_nanos(10 * 1000 * 1000);
    work.mutable_retry_policy()->mutable_max_backoff()->set_nanos(50 * 1000 * 1000);
    create("work", work);
    create("replay", v1::Subscription());
    v1::Subscription filtered;
    filtered.mutable_filter()->mutable_exact()->set_attribute("type");
    filtered.mutable_filter()->mutable_exact()->set_value(kTypeA);
    create("filtered", filtered);
    broker.Kill();
  }

  std::mt19937 rng(20261201);
  const absl::Time start = absl::Now();
  for (int round = 0; round < kRounds; ++round) {
    Broker broker(data);
    const absl::Duration life = absl::Milliseconds(300 + rng() % 900);
    absl::Notification stop;
    std::vector<std::thread> threads;
    for (int p = 0; p < kProducers; ++p) {
      threads.emplace_back([&, p] {
        auto stub = broker.Stub();
        Produce(*stub, ledger, p, kNewPerRound, absl::Seconds(5), &stop);
      });
    }
    for (int c = 0; c < kConsumers; ++c) {
      threads.emplace_back([&, c, round] {
        auto stub = broker.Stub();
        Consume(*stub, ledger, "subscriptions/work", Mode::kChaos, round * 10 + c, absl::Seconds(5),
                nullptr);
      });
    }
    threads.emplace_back([&, round] {
      auto stub = broker.Stub();
      Consume(*stub, ledger, "subscriptions/replay", Mode::kAckAll, 1000 + round, absl::Seconds(5),
              nullptr);
    });
    threads.emplace_back([&, round] {
      auto stub = broker.Stub();
      Consume(*stub, ledger, "subscriptions/filtered", Mode::kAckAll, 2000 + round,
              absl::Seconds(5), nullptr);
    });
    threads.emplace_back([&] {
      auto stub = broker.Stub();
      Administer(*stub, stop);
    });
    // A random moment: SIGKILL mid-traffic.
    stop.WaitForNotificationWithTimeout(life);
    broker.Kill();
    stop.Notify();
    for (auto& t : threads) t.join();
  }

  // The last run: no kill. Producers finish, then the backlog is checked
  // against what was settled, then everything is drained.
  Broker broker(data);
  auto stub = broker.Stub();
  {
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        auto s = broker.Stub();
        Produce(*s, ledger, p, 0, absl::Seconds(30), nullptr);
      });
    }
    for (auto& t : producers) t.join();
  }
  std::set<std::string> published_ids;
  {
    absl::MutexLock lock(&ledger.mu);
    for (int p = 0; p < kProducers; ++p) {
      EXPECT_TRUE(ledger.unacked[p].empty()) << "producer " << p << " still has unacked events";
    }
    EXPECT_FALSE(ledger.sequence_mismatch) << "a resend was acked with another sequence";
    for (const auto& [id, seq] : ledger.published) published_ids.insert(id);
    EXPECT_EQ(published_ids.size(), static_cast<size_t>(kProducers * kRounds * kNewPerRound));
    // Backlog + dead letters = published minus acked; acks sent but not
    // confirmed when the broker died may or may not have been written.
    const v1::Subscription work = Get(*stub, "subscriptions/work");
    const int64_t owed = work.stats().backlog() + work.stats().dead_letter_count();
    std::set<std::string> surely_unsettled, maybe_unsettled;
    for (const std::string& id : published_ids) {
      if (ledger.work_acked.count(id)) continue;
      maybe_unsettled.insert(id);
      if (!ledger.work_ack_unconfirmed.count(id)) surely_unsettled.insert(id);
    }
    std::fprintf(
        stderr,
        "chaos: %d kills, %zu events, %lld resent, %lld publish acks, %lld deliveries (%lld "
        "redeliveries), %lld nacks, %lld left to expire, %zu acks confirmed, %zu "
        "unconfirmed; owed now %lld (dead letters %lld), bounds [%zu, %zu]\n",
        kRounds, published_ids.size(), static_cast<long long>(ledger.resent),
        static_cast<long long>(ledger.publish_acks), static_cast<long long>(ledger.deliveries),
        static_cast<long long>(ledger.redeliveries), static_cast<long long>(ledger.nacks),
        static_cast<long long>(ledger.expiries), ledger.work_acked.size(),
        ledger.work_ack_unconfirmed.size(), static_cast<long long>(owed),
        static_cast<long long>(work.stats().dead_letter_count()), surely_unsettled.size(),
        maybe_unsettled.size());
    EXPECT_GE(owed, static_cast<int64_t>(surely_unsettled.size()));
    EXPECT_LE(owed, static_cast<int64_t>(maybe_unsettled.size()));
  }
  // Dead letters back, then every subscription drained with acks.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(20)));
    v1::RedriveDeadLettersRequest req;
    req.set_subscription("subscriptions/work");
    req.set_max_per_second(10000);
    v1::RedriveDeadLettersResponse resp;
    ASSERT_TRUE(stub->RedriveDeadLetters(&ctx, req, &resp).ok());
  }
  std::set<std::string> type_a;
  for (const std::string& id : published_ids) {
    if (EventFor(id).type() == kTypeA) type_a.insert(id);
  }
  auto covered = [&](const std::set<std::string>& got, const std::set<std::string>& want) {
    return std::includes(got.begin(), got.end(), want.begin(), want.end());
  };
  {
    std::vector<std::thread> drains;
    const std::pair<const char*, std::function<bool()>> subs[] = {
        // Acks sent but unconfirmed when the broker died were written or
        // not: "work" is drained once its backlog is 0, with every event
        // acked (confirmed, or written before a kill).
        {"subscriptions/work",
         [&] {
           {
             absl::MutexLock lock(&ledger.mu);
             std::set<std::string> settled = ledger.work_acked;
             settled.insert(ledger.work_ack_unconfirmed.begin(), ledger.work_ack_unconfirmed.end());
             if (!covered(settled, published_ids)) return false;
           }
           return Get(*stub, "subscriptions/work").stats().backlog() == 0;
         }},
        {"subscriptions/replay",
         [&] {
           absl::MutexLock lock(&ledger.mu);
           return covered(ledger.replay_delivered, published_ids);
         }},
        {"subscriptions/filtered",
         [&] {
           absl::MutexLock lock(&ledger.mu);
           return covered(ledger.filtered_delivered, type_a);
         }},
    };
    for (const auto& [name, done] : subs) {
      drains.emplace_back([&, name = std::string(name), done = done] {
        auto s = broker.Stub();
        // Stops as soon as the subscription has everything.
        if (!done()) Consume(*s, ledger, name, Mode::kAckAll, 7, absl::Seconds(30), done);
      });
    }
    for (auto& t : drains) t.join();
  }
  {
    absl::MutexLock lock(&ledger.mu);
    EXPECT_TRUE(covered(ledger.work_delivered, published_ids));
    std::set<std::string> settled = ledger.work_acked;
    settled.insert(ledger.work_ack_unconfirmed.begin(), ledger.work_ack_unconfirmed.end());
    EXPECT_TRUE(covered(settled, published_ids)) << "events never acked on work";
    EXPECT_TRUE(covered(ledger.replay_delivered, published_ids)) << "replay lost events";
    EXPECT_TRUE(covered(ledger.filtered_delivered, type_a)) << "filtered lost events";
    for (const std::string& id : ledger.filtered_delivered) {
      EXPECT_EQ(EventFor(id).type(), kTypeA) << id << " passed the filter";
    }
  }
  EXPECT_EQ(Get(*stub, "subscriptions/work").stats().backlog(), 0);

  // Republishing any acked id is a duplicate with the original sequence.
  std::vector<std::string> ids(published_ids.begin(), published_ids.end());
  for (size_t i = 0; i < ids.size(); i += 200) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(absl::Seconds(10)));
    v1::PublishRequest req;
    for (size_t j = i; j < std::min(ids.size(), i + 200); ++j) *req.add_events() = EventFor(ids[j]);
    v1::PublishResponse resp;
    ASSERT_TRUE(stub->Publish(&ctx, req, &resp).ok());
    absl::MutexLock lock(&ledger.mu);
    for (int k = 0; k < resp.results_size(); ++k) {
      const std::string& id = ids[i + k];
      EXPECT_TRUE(resp.results(k).duplicate()) << id;
      EXPECT_EQ(resp.results(k).sequence(), ledger.published[id]) << id;
    }
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(120)) << "chaos test ran too long";
}

}  // namespace
}  // namespace pettube
