#include "tests/load/pettube_peer.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "proto/pettube/broker/v1/broker.grpc.pb.h"

namespace pettube::load {
namespace {

namespace v1 = ::pettube::broker::v1;
using ::io::cloudevents::v1::CloudEvent;

// Largest number of events in one PublishStreamRequest (as the Publisher's
// default max_batch_events).
constexpr int kMaxEventsPerRequest = 256;
constexpr char kType[] = "pettube.bench.v1.Loaded";

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

// A channel with its own TCP connection: gRPC otherwise shares one
// subchannel between channels to the same address, and NATS producers each
// get their own connection too.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return channel;
}

absl::Status CreateSubscription(v1::Broker::Stub& stub, const std::string& id) {
  v1::CreateSubscriptionRequest request;
  request.set_subscription_id(id);
  // Matches every bench event, through the filter index like a real one
  // (JetStream's consumers filter on "bench.>").
  auto* prefix = request.mutable_subscription()->mutable_filter()->mutable_prefix();
  prefix->set_attribute("type");
  prefix->set_value("pettube.bench.");
  request.mutable_subscription()->mutable_start_position()->mutable_latest();
  v1::Subscription response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return FromGrpc(stub.CreateSubscription(&context, request, &response),
                  absl::StrCat("CreateSubscription ", id));
}

absl::StatusOr<v1::Subscription> GetSubscription(v1::Broker::Stub& stub, const std::string& id) {
  v1::GetSubscriptionRequest request;
  request.set_name(absl::StrCat("subscriptions/", id));
  v1::Subscription response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (auto s = FromGrpc(stub.GetSubscription(&context, request, &response),
                        absl::StrCat("GetSubscription ", id));
      !s.ok()) {
    return s;
  }
  return response;
}

// Waits until the broker has processed every ack of `id` (backlog 0), up to
// `timeout`. Returns the backlog left.
int64_t AwaitEmptyBacklog(v1::Broker::Stub& stub, const std::string& id, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  int64_t backlog = -1;
  for (;;) {
    auto sub = GetSubscription(stub, id);
    if (sub.ok()) backlog = sub->stats().backlog();
    if (backlog == 0 || absl::Now() >= deadline) return backlog;
    absl::SleepFor(absl::Milliseconds(50));  // a bench check, not product code
  }
}

struct ProducerResult {
  int64_t acked = 0;
  int64_t failed = 0;
  absl::Status status;
};

// One PublishStream: sends `count` events (stopping early at `deadline`),
// keeping at most `window` unacked. With `interval` > 0 it sends one event
// per request at start + i * interval and stamps that scheduled time (so a
// stall delays the stamp's delivery rather than hiding in the pacer);
// otherwise it sends whatever the window allows, stamped at send time.
ProducerResult RunProducer(const std::shared_ptr<grpc::Channel>& channel,
                           const std::string& id_prefix, int64_t count, int window,
                           int payload_bytes, absl::Time deadline, absl::Duration interval) {
  auto stub = v1::Broker::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->PublishStream(&context);

  absl::Mutex mu;
  int64_t in_flight = 0;
  bool ended = false;
  ProducerResult result;
  std::thread reader([&] {
    v1::PublishStreamResponse response;
    while (stream->Read(&response)) {
      int64_t ok = 0, bad = 0;
      std::string error;
      for (const v1::PublishAck& ack : response.acks()) {
        if (ack.result().status().code() == 0) {
          ++ok;
        } else {
          ++bad;
          if (error.empty()) error = ack.result().status().message();
        }
      }
      absl::MutexLock lock(&mu);
      in_flight -= ok + bad;
      result.acked += ok;
      result.failed += bad;
      if (!error.empty() && result.status.ok()) result.status = absl::InternalError(error);
    }
    absl::MutexLock lock(&mu);
    ended = true;
  });

  CloudEvent event;
  event.set_source("//pettube/bench");
  event.set_spec_version("1.0");
  event.set_type(kType);
  event.set_binary_data(MakePayload(payload_bytes));

  const int64_t start = MonotonicNanos();
  int64_t sent = 0;
  while (sent < count && absl::Now() < deadline) {
    int64_t room;
    {
      absl::MutexLock lock(&mu);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ended || in_flight < window; };
      mu.Await(absl::Condition(&ready));
      if (ended) break;
      room = window - in_flight;
    }
    int64_t scheduled = 0;
    if (interval > absl::ZeroDuration()) {
      scheduled = start + sent * absl::ToInt64Nanoseconds(interval);
      const int64_t wait = scheduled - MonotonicNanos();
      if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
      room = 1;
    }
    const int64_t k = std::min<int64_t>({room, count - sent, kMaxEventsPerRequest});
    v1::PublishStreamRequest request;
    for (int64_t i = 0; i < k; ++i) {
      v1::PublishStreamEvent* e = request.add_events();
      e->set_client_sequence(static_cast<uint64_t>(sent + i));
      CloudEvent* ce = e->mutable_event();
      *ce = event;
      ce->set_id(absl::StrCat(id_prefix, sent + i));
      char* data = &(*ce->mutable_binary_data())[0];
      if (scheduled > 0) {
        std::memcpy(data, &scheduled, sizeof(scheduled));
      } else {
        StampNow(data);
      }
    }
    {
      absl::MutexLock lock(&mu);
      in_flight += k;
    }
    if (!stream->Write(request)) break;
    sent += k;
  }
  stream->WritesDone();
  reader.join();  // the broker ends the stream once every event is acked
  const grpc::Status status = stream->Finish();
  absl::MutexLock lock(&mu);
  result.failed += sent - result.acked - result.failed;
  if (result.status.ok()) result.status = FromGrpc(status, "PublishStream");
  return result;
}

// Publishes with `producers` concurrent streams; times first send to last
// ack.
Rate PublishWith(const std::string& target, const std::string& run, int producers, int window,
                 int payload_bytes, int64_t events, absl::Duration max_time,
                 absl::Status* status) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int p = 0; p < producers; ++p) channels.push_back(NewChannel(target));
  std::vector<ProducerResult> results(static_cast<size_t>(producers));
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + max_time;
  for (int p = 0; p < producers; ++p) {
    const int64_t quota = events / producers + (p < events % producers ? 1 : 0);
    threads.emplace_back([&, p, quota] {
      results[static_cast<size_t>(p)] =
          RunProducer(channels[static_cast<size_t>(p)], absl::StrCat(run, "-p", p, "-"), quota,
                      window, payload_bytes, deadline, absl::ZeroDuration());
    });
  }
  for (auto& t : threads) t.join();
  Rate rate;
  rate.elapsed = absl::Now() - start;
  for (const ProducerResult& r : results) {
    rate.count += r.acked;
    rate.errors += r.failed;
    if (!r.status.ok() && status->ok()) *status = r.status;
  }
  return rate;
}

// A unique prefix for event ids, so a run never collides with an earlier
// one in the broker's dedup window.
std::string RunId() { return absl::StrCat("r", absl::ToUnixNanos(absl::Now())); }

// One Subscribe stream: attaches with `credits`, receives deliveries on a
// reader thread, and acks them from a writer thread that sends everything
// received since its last write as one Settle followed by one Flow
// re-granting that many credits.
class StreamConsumer {
 public:
  // Deliveries whose stamp is before `latency_from` (monotonic ns) are not
  // timed; -1 times none. Without `ack` deliveries are held, never settled.
  StreamConsumer(const std::string& target, std::string subscription, int credits,
                 int64_t target_count, int64_t latency_from = -1, bool ack = true)
      : channel_(NewChannel(target)),
        stub_(v1::Broker::NewStub(channel_)),
        subscription_(std::move(subscription)),
        credits_(credits),
        target_count_(target_count),
        latency_from_(latency_from),
        ack_(ack) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(15));
  }

  ~StreamConsumer() { Stop().IgnoreError(); }

  // Attaches and waits for the broker's Attached answer.
  absl::Status Start() {
    stream_ = stub_->Subscribe(&context_);
    v1::SubscribeRequest attach;
    attach.mutable_attach()->set_subscription(absl::StrCat("subscriptions/", subscription_));
    attach.mutable_attach()->set_max_in_flight(credits_);
    attach.mutable_attach()->set_consumer("broker-bench");
    if (!stream_->Write(attach)) return absl::UnavailableError("Subscribe: attach write failed");
    reader_ = std::thread([this] { ReadLoop(); });
    writer_ = std::thread([this] { WriteLoop(); });
    started_ = true;
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return attached_ || ended_; };
    mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(10));
    if (!attached_) return absl::UnavailableError("Subscribe: not attached within 10 s");
    return absl::OkStatus();
  }

  // True once `target_count` deliveries were received and their acks
  // written; false if the stream ended or `deadline` passed first.
  bool WaitDone(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return acks_written_ >= target_count_ || ended_;
    };
    mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
    return acks_written_ >= target_count_;
  }

  // Writes what is pending, closes its side and waits for the broker to end
  // the stream.
  absl::Status Stop() {
    if (!started_ || stopped_) return absl::OkStatus();
    stopped_ = true;
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    writer_.join();
    stream_->WritesDone();
    reader_.join();
    return FromGrpc(stream_->Finish(), "Subscribe");
  }

  int64_t received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  int64_t errors() {
    absl::MutexLock lock(&mu_);
    return errors_;
  }
  std::string first_error() {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }
  std::vector<int64_t> TakeLatencies() {
    absl::MutexLock lock(&mu_);
    return std::move(latencies_);
  }

 private:
  void ReadLoop() {
    v1::SubscribeResponse response;
    std::vector<std::string> leases;
    std::vector<int64_t> latencies;
    while (stream_->Read(&response)) {
      switch (response.response_case()) {
        case v1::SubscribeResponse::kAttached: {
          absl::MutexLock lock(&mu_);
          attached_ = true;
          break;
        }
        case v1::SubscribeResponse::kDeliveries: {
          const int64_t now = MonotonicNanos();
          leases.clear();
          latencies.clear();
          for (v1::Delivery& d : *response.mutable_deliveries()->mutable_deliveries()) {
            if (latency_from_ >= 0) {
              const std::string& data = d.event().binary_data();
              const int64_t stamp = ReadStamp(data.data(), data.size());
              if (stamp >= latency_from_) latencies.push_back(now - stamp);
            }
            leases.push_back(std::move(*d.mutable_lease_id()));
          }
          absl::MutexLock lock(&mu_);
          received_ += static_cast<int64_t>(leases.size());
          if (ack_) {
            for (auto& l : leases) pending_acks_.push_back(std::move(l));
          }
          latencies_.insert(latencies_.end(), latencies.begin(), latencies.end());
          break;
        }
        case v1::SubscribeResponse::kSettleResults: {
          absl::MutexLock lock(&mu_);
          for (const auto& r : response.settle_results().results()) {
            if (r.status().code() != 0) {
              ++errors_;
              if (first_error_.empty()) first_error_ = r.status().message();
            }
          }
          break;
        }
        case v1::SubscribeResponse::kRequestError: {
          absl::MutexLock lock(&mu_);
          ++errors_;
          if (first_error_.empty()) first_error_ = response.request_error().message();
          break;
        }
        default:
          break;
      }
    }
    absl::MutexLock lock(&mu_);
    ended_ = true;
  }

  void WriteLoop() {
    std::vector<std::string> acks;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !pending_acks_.empty() || stop_ || ended_;
        };
        mu_.Await(absl::Condition(&ready));
        if (pending_acks_.empty() || ended_) return;
        acks.swap(pending_acks_);
      }
      const int n = static_cast<int>(acks.size());
      v1::SubscribeRequest settle;
      for (std::string& a : acks) settle.mutable_settle()->add_acks(std::move(a));
      acks.clear();
      v1::SubscribeRequest flow;
      flow.mutable_flow()->set_credits(n);
      if (!stream_->Write(settle) || !stream_->Write(flow)) return;
      absl::MutexLock lock(&mu_);
      acks_written_ += n;
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Broker::Stub> stub_;
  const std::string subscription_;
  const int credits_;
  const int64_t target_count_;
  const int64_t latency_from_;
  const bool ack_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>> stream_;
  std::thread reader_;
  std::thread writer_;
  bool started_ = false;
  bool stopped_ = false;

  absl::Mutex mu_;
  bool attached_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t received_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t acks_written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> pending_acks_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> latencies_ ABSL_GUARDED_BY(mu_);
};

class PetTubeIdleConsumers : public IdleConsumers {
 public:
  std::vector<std::unique_ptr<StreamConsumer>> consumers;
};

}  // namespace

PetTubePeer::PetTubePeer(std::string target) : target_(std::move(target)) {}

absl::StatusOr<Rate> PetTubePeer::Publish(const PublishSpec& spec) {
  absl::Status status;
  Rate rate = PublishWith(target_, RunId(), spec.producers, spec.window, spec.payload_bytes,
                          spec.events, spec.max_time, &status);
  if (rate.count == 0 && !status.ok()) return status;
  return rate;
}

absl::Status PetTubePeer::Preload(const PreloadSpec& spec) {
  auto stub = v1::Broker::NewStub(NewChannel(target_));
  for (int i = 0; i < spec.subscriptions; ++i) {
    if (auto s = CreateSubscription(*stub, absl::StrCat("c", i)); !s.ok()) return s;
  }
  absl::Status status;
  Rate rate = PublishWith(target_, RunId(), spec.producers, spec.window, spec.payload_bytes,
                          spec.events, absl::Minutes(10), &status);
  if (rate.count != spec.events) {
    return absl::InternalError(absl::StrCat("preload: ", rate.count, " of ", spec.events,
                                            " events acked: ", status.ToString()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Rate> PetTubePeer::Consume(const ConsumeSpec& spec) {
  std::vector<std::unique_ptr<StreamConsumer>> consumers;
  for (int i = 0; i < spec.consumers; ++i) {
    consumers.push_back(std::make_unique<StreamConsumer>(target_, absl::StrCat("c", i),
                                                         spec.credits, spec.events));
  }
  const absl::Time start = absl::Now();
  for (auto& c : consumers) {
    if (auto s = c->Start(); !s.ok()) return s;
  }
  bool all = true;
  for (auto& c : consumers) all &= c->WaitDone(start + spec.timeout);
  Rate rate;
  rate.elapsed = absl::Now() - start;
  for (auto& c : consumers) {
    rate.count += std::min(c->received(), spec.events);
    rate.errors += c->errors();
  }
  if (!all) {
    return absl::DeadlineExceededError(
        absl::StrCat("consume: ", rate.count, " of ", spec.events * spec.consumers,
                     " deliveries within ", absl::FormatDuration(spec.timeout),
                     "; first error: ", consumers[0]->first_error()));
  }
  for (auto& c : consumers) c->Stop().IgnoreError();
  // Every ack must have reached the broker: count what it still owes.
  auto stub = v1::Broker::NewStub(NewChannel(target_));
  for (int i = 0; i < spec.consumers; ++i) {
    const int64_t left = AwaitEmptyBacklog(*stub, absl::StrCat("c", i), absl::Seconds(10));
    if (left != 0) rate.errors += left < 0 ? spec.events : left;
  }
  return rate;
}

absl::StatusOr<Percentiles> PetTubePeer::Latency(const LatencySpec& spec) {
  auto stub = v1::Broker::NewStub(NewChannel(target_));
  if (auto s = CreateSubscription(*stub, "lat"); !s.ok()) return s;
  const int64_t total =
      static_cast<int64_t>(spec.rate_per_second * absl::ToDoubleSeconds(spec.duration));
  const absl::Duration interval = absl::Seconds(1) / spec.rate_per_second;
  auto producer_channel = NewChannel(target_);
  StreamConsumer consumer(target_, "lat", spec.credits, total, /*latency_from=*/0);
  if (auto s = consumer.Start(); !s.ok()) return s;
  const absl::Time start = absl::Now();
  ProducerResult produced = RunProducer(producer_channel, absl::StrCat(RunId(), "-lat-"), total,
                                        spec.window, spec.payload_bytes,
                                        absl::Now() + spec.duration + absl::Minutes(2), interval);
  const bool done = consumer.WaitDone(absl::Now() + absl::Seconds(60));
  const absl::Duration span = absl::Now() - start;
  const int64_t received = consumer.received();
  std::vector<int64_t> all = consumer.TakeLatencies();
  consumer.Stop().IgnoreError();
  if (!produced.status.ok() && produced.acked == 0) return produced.status;
  // Leave out the warm-up: deliveries arrive in send order (one producer).
  std::vector<int64_t> kept;
  if (static_cast<int64_t>(all.size()) > spec.warmup_events) {
    kept.assign(all.begin() + spec.warmup_events, all.end());
  }
  Percentiles p = Summarize(std::move(kept));
  p.missing = total - received;
  p.span = span;
  if (!done && p.missing == 0) p.missing = 1;
  return p;
}

absl::StatusOr<int64_t> PetTubePeer::Backlog(int64_t events, int payload_bytes,
                                             bool stalled_consumer,
                                             const std::function<void()>& measure) {
  auto stub = v1::Broker::NewStub(NewChannel(target_));
  if (auto s = CreateSubscription(*stub, "backlog"); !s.ok()) return s;
  std::unique_ptr<StreamConsumer> stalled;
  if (stalled_consumer) {
    stalled = std::make_unique<StreamConsumer>(target_, "backlog", /*credits=*/1,
                                               /*target_count=*/1, -1, /*ack=*/false);
    if (auto s = stalled->Start(); !s.ok()) return s;
  }
  absl::Status status;
  Rate rate = PublishWith(target_, RunId(), /*producers=*/4, /*window=*/256, payload_bytes, events,
                          absl::Minutes(10), &status);
  if (rate.count != events) {
    return absl::InternalError(absl::StrCat("backlog: ", rate.count, " of ", events,
                                            " events acked: ", status.ToString()));
  }
  auto sub = GetSubscription(*stub, "backlog");
  if (!sub.ok()) return sub.status();
  measure();
  return sub->stats().backlog();
}

absl::StatusOr<std::unique_ptr<IdleConsumers>> PetTubePeer::AttachIdle(int consumers,
                                                                       int credits) {
  auto stub = v1::Broker::NewStub(NewChannel(target_));
  auto idle = std::make_unique<PetTubeIdleConsumers>();
  for (int i = 0; i < consumers; ++i) {
    const std::string id = absl::StrCat("idle", i);
    if (auto s = CreateSubscription(*stub, id); !s.ok()) return s;
    idle->consumers.push_back(
        std::make_unique<StreamConsumer>(target_, id, credits, /*target_count=*/1));
    if (auto s = idle->consumers.back()->Start(); !s.ok()) return s;
  }
  return std::unique_ptr<IdleConsumers>(std::move(idle));
}

}  // namespace pettube::load
