#include "tests/load/jetstream_peer.h"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace pettube::load {
namespace {

constexpr char kStream[] = "BENCH";
constexpr char kSubjects[] = "bench.>";
constexpr char kSubject[] = "bench.e";

struct ConnDeleter {
  void operator()(natsConnection* c) const { natsConnection_Destroy(c); }
};
struct JsDeleter {
  void operator()(jsCtx* js) const { jsCtx_Destroy(js); }
};
struct SubDeleter {
  void operator()(natsSubscription* s) const { natsSubscription_Destroy(s); }
};
using Conn = std::unique_ptr<natsConnection, ConnDeleter>;
using Js = std::unique_ptr<jsCtx, JsDeleter>;
using Sub = std::unique_ptr<natsSubscription, SubDeleter>;

absl::Status NatsError(natsStatus s, absl::string_view what, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  const char* last = nats_GetLastError(nullptr);
  return absl::InternalError(absl::StrCat(what, ": ", natsStatus_GetText(s), " (js error ",
                                          static_cast<int>(jerr), ") ", last ? last : ""));
}

absl::StatusOr<Conn> Connect(const std::string& url, bool send_asap) {
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, url.c_str());
  if (s == NATS_OK && send_asap) s = natsOptions_SetSendAsap(opts, true);
  natsConnection* nc = nullptr;
  if (s == NATS_OK) s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) return NatsError(s, absl::StrCat("connect ", url));
  return Conn(nc);
}

// Counts asynchronous publishes the server refused or never acked.
struct PublishErrors {
  std::atomic<int64_t> count{0};
  absl::Mutex mu;
  std::string first ABSL_GUARDED_BY(mu);
};

void OnPublishError(jsCtx*, jsPubAckErr* pae, void* closure) {
  auto* errors = static_cast<PublishErrors*>(closure);
  errors->count.fetch_add(1);
  absl::MutexLock lock(&errors->mu);
  if (errors->first.empty()) {
    errors->first = absl::StrCat(natsStatus_GetText(pae->Err), " ",
                                 pae->ErrText != nullptr ? pae->ErrText : "");
  }
}

// A JetStream context whose async publishes keep at most `window` unacked.
absl::StatusOr<Js> Context(natsConnection* nc, int window, PublishErrors* errors) {
  jsOptions o;
  jsOptions_Init(&o);
  // Generous waits so a slow (synced) store shows up as low throughput,
  // not as timeouts.
  o.Wait = 60000;
  o.PublishAsync.MaxPending = window;
  o.PublishAsync.StallWait = 60000;
  if (errors != nullptr) {
    o.PublishAsync.ErrHandler = OnPublishError;
    o.PublishAsync.ErrHandlerClosure = errors;
  }
  jsCtx* js = nullptr;
  natsStatus s = natsConnection_JetStream(&js, nc, &o);
  if (s != NATS_OK) return NatsError(s, "JetStream context");
  return Js(js);
}

absl::Status EnsureStream(const std::string& url) {
  auto conn = Connect(url, false);
  if (!conn.ok()) return conn.status();
  auto js = Context(conn->get(), 256, nullptr);
  if (!js.ok()) return js.status();
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = kStream;
  const char* subjects[] = {kSubjects};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_LimitsPolicy;
  cfg.Replicas = 1;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&si, js->get(), &cfg, nullptr, &jerr);
  if (si != nullptr) jsStreamInfo_Destroy(si);
  if (s != NATS_OK && jerr != JSStreamNameExistErr) return NatsError(s, "js_AddStream", jerr);
  return absl::OkStatus();
}

struct ProducerResult {
  int64_t acked = 0;
  int64_t failed = 0;
  absl::Status status;
};

// One connection publishing asynchronously; see PetTube's RunProducer for
// the meaning of `interval` and the stamps.
class Producer {
 public:
  static absl::StatusOr<std::unique_ptr<Producer>> Create(const std::string& url, int window,
                                                          bool send_asap) {
    auto p = std::unique_ptr<Producer>(new Producer());
    auto conn = Connect(url, send_asap);
    if (!conn.ok()) return conn.status();
    p->conn_ = std::move(*conn);
    auto js = Context(p->conn_.get(), window, &p->errors_);
    if (!js.ok()) return js.status();
    p->js_ = std::move(*js);
    return p;
  }

  ProducerResult Run(int64_t count, int payload_bytes, absl::Time deadline,
                     absl::Duration interval) {
    ProducerResult result;
    std::string payload = MakePayload(payload_bytes);
    const int64_t start = MonotonicNanos();
    int64_t sent = 0;
    while (sent < count && absl::Now() < deadline) {
      if (interval > absl::ZeroDuration()) {
        const int64_t scheduled = start + sent * absl::ToInt64Nanoseconds(interval);
        const int64_t wait = scheduled - MonotonicNanos();
        if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
        std::memcpy(&payload[0], &scheduled, sizeof(scheduled));
      } else {
        StampNow(&payload[0]);
      }
      natsStatus s = js_PublishAsync(js_.get(), kSubject, payload.data(),
                                     static_cast<int>(payload.size()), nullptr);
      if (s != NATS_OK) {
        result.status = NatsError(s, "js_PublishAsync");
        break;
      }
      ++sent;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120000;
    natsStatus s = js_PublishAsyncComplete(js_.get(), &po);
    if (s != NATS_OK && result.status.ok()) {
      result.status = NatsError(s, "js_PublishAsyncComplete");
    }
    result.failed = errors_.count.load();
    result.acked = sent - result.failed;
    {
      absl::MutexLock lock(&errors_.mu);
      if (!errors_.first.empty() && result.status.ok()) {
        result.status = absl::InternalError(errors_.first);
      }
    }
    return result;
  }

 private:
  Producer() = default;
  PublishErrors errors_;  // outlives js_ (declared first)
  Conn conn_;
  Js js_;
};

absl::StatusOr<Rate> PublishWith(const std::string& url, int producers, int window,
                                 int payload_bytes, int64_t events, absl::Duration max_time) {
  if (auto s = EnsureStream(url); !s.ok()) return s;
  std::vector<std::unique_ptr<Producer>> ps;
  for (int p = 0; p < producers; ++p) {
    auto producer = Producer::Create(url, window, /*send_asap=*/false);
    if (!producer.ok()) return producer.status();
    ps.push_back(std::move(*producer));
  }
  std::vector<ProducerResult> results(static_cast<size_t>(producers));
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + max_time;
  for (int p = 0; p < producers; ++p) {
    const int64_t quota = events / producers + (p < events % producers ? 1 : 0);
    threads.emplace_back([&, p, quota] {
      results[static_cast<size_t>(p)] =
          ps[static_cast<size_t>(p)]->Run(quota, payload_bytes, deadline, absl::ZeroDuration());
    });
  }
  for (auto& t : threads) t.join();
  Rate rate;
  rate.elapsed = absl::Now() - start;
  absl::Status first;
  for (const ProducerResult& r : results) {
    rate.count += r.acked;
    rate.errors += r.failed;
    if (!r.status.ok() && first.ok()) first = r.status;
  }
  if (rate.count == 0 && !first.ok()) return first;
  return rate;
}

// A durable push consumer with explicit acks on its own connection.
class Consumer {
 public:
  static absl::StatusOr<std::unique_ptr<Consumer>> Create(const std::string& url,
                                                          const std::string& durable,
                                                          int credits, int64_t target,
                                                          bool send_asap, bool time_latency,
                                                          bool ack = true) {
    auto c = std::unique_ptr<Consumer>(new Consumer(durable, target, time_latency, ack));
    auto conn = Connect(url, send_asap);
    if (!conn.ok()) return conn.status();
    c->conn_ = std::move(*conn);
    auto js = Context(c->conn_.get(), 256, nullptr);
    if (!js.ok()) return js.status();
    c->js_ = std::move(*js);
    c->credits_ = credits;
    return c;
  }

  ~Consumer() {
    sub_.reset();
    js_.reset();
    conn_.reset();
  }

  // Creates the durable (reading the stream from its start) and starts
  // delivery.
  absl::Status Start() {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.ManualAck = true;
    so.Config.Durable = durable_.c_str();
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.MaxAckPending = credits_;
    natsSubscription* sub = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s =
        js_Subscribe(&sub, js_.get(), kSubjects, &Consumer::OnMessage, this, nullptr, &so, &jerr);
    if (s != NATS_OK) return NatsError(s, absl::StrCat("js_Subscribe ", durable_), jerr);
    sub_.reset(sub);
    return absl::OkStatus();
  }

  bool WaitDone(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return received_ >= target_; };
    mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
    return received_ >= target_;
  }

  // Waits until the server has processed every ack (nothing pending or
  // unacked), up to `timeout`; returns what it still counts as owed.
  int64_t AwaitAllAcked(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    int64_t owed = -1;
    for (;;) {
      jsConsumerInfo* ci = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      if (js_GetConsumerInfo(&ci, js_.get(), kStream, durable_.c_str(), nullptr, &jerr) ==
          NATS_OK) {
        owed = static_cast<int64_t>(ci->NumPending) + ci->NumAckPending;
        jsConsumerInfo_Destroy(ci);
      }
      if (owed == 0 || absl::Now() >= deadline) return owed;
      absl::SleepFor(absl::Milliseconds(50));  // a bench check, not product code
    }
  }

  int64_t received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  int64_t errors() {
    absl::MutexLock lock(&mu_);
    return errors_;
  }
  std::vector<int64_t> TakeLatencies() {
    absl::MutexLock lock(&mu_);
    return std::move(latencies_);
  }

 private:
  Consumer(std::string durable, int64_t target, bool time_latency, bool ack)
      : durable_(std::move(durable)), target_(target), time_latency_(time_latency), ack_(ack) {}

  static void OnMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<Consumer*>(closure);
    int64_t latency = -1;
    if (self->time_latency_) {
      const int64_t now = MonotonicNanos();
      latency = now - ReadStamp(natsMsg_GetData(msg),
                                static_cast<size_t>(natsMsg_GetDataLength(msg)));
    }
    const natsStatus s = self->ack_ ? natsMsg_Ack(msg, nullptr) : NATS_OK;
    natsMsg_Destroy(msg);
    absl::MutexLock lock(&self->mu_);
    ++self->received_;
    if (s != NATS_OK) ++self->errors_;
    if (latency >= 0) self->latencies_.push_back(latency);
  }

  const std::string durable_;
  const int64_t target_;
  const bool time_latency_;
  const bool ack_;
  int credits_ = 0;
  Conn conn_;
  Js js_;
  Sub sub_;
  absl::Mutex mu_;
  int64_t received_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> latencies_ ABSL_GUARDED_BY(mu_);
};

class JetStreamIdleConsumers : public IdleConsumers {
 public:
  std::vector<std::unique_ptr<Consumer>> consumers;
};

}  // namespace

JetStreamPeer::JetStreamPeer(std::string url) : url_(std::move(url)) {}

absl::StatusOr<Rate> JetStreamPeer::Publish(const PublishSpec& spec) {
  return PublishWith(url_, spec.producers, spec.window, spec.payload_bytes, spec.events,
                     spec.max_time);
}

absl::Status JetStreamPeer::Preload(const PreloadSpec& spec) {
  auto rate = PublishWith(url_, spec.producers, spec.window, spec.payload_bytes, spec.events,
                          absl::Minutes(10));
  if (!rate.ok()) return rate.status();
  if (rate->count != spec.events) {
    return absl::InternalError(
        absl::StrCat("preload: ", rate->count, " of ", spec.events, " events acked"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Rate> JetStreamPeer::Consume(const ConsumeSpec& spec) {
  std::vector<std::unique_ptr<Consumer>> consumers;
  for (int i = 0; i < spec.consumers; ++i) {
    auto c = Consumer::Create(url_, absl::StrCat("c", i), spec.credits, spec.events,
                              /*send_asap=*/false, /*time_latency=*/false);
    if (!c.ok()) return c.status();
    consumers.push_back(std::move(*c));
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
    return absl::DeadlineExceededError(absl::StrCat("consume: ", rate.count, " of ",
                                                    spec.events * spec.consumers,
                                                    " deliveries within ",
                                                    absl::FormatDuration(spec.timeout)));
  }
  for (auto& c : consumers) {
    const int64_t owed = c->AwaitAllAcked(absl::Seconds(10));
    if (owed != 0) rate.errors += owed < 0 ? spec.events : owed;
  }
  return rate;
}

absl::StatusOr<Percentiles> JetStreamPeer::Latency(const LatencySpec& spec) {
  if (auto s = EnsureStream(url_); !s.ok()) return s;
  const int64_t total =
      static_cast<int64_t>(spec.rate_per_second * absl::ToDoubleSeconds(spec.duration));
  const absl::Duration interval = absl::Seconds(1) / spec.rate_per_second;
  auto consumer = Consumer::Create(url_, "lat", spec.credits, total, /*send_asap=*/true,
                                   /*time_latency=*/true);
  if (!consumer.ok()) return consumer.status();
  if (auto s = (*consumer)->Start(); !s.ok()) return s;
  auto producer = Producer::Create(url_, spec.window, /*send_asap=*/true);
  if (!producer.ok()) return producer.status();
  const absl::Time start = absl::Now();
  ProducerResult produced = (*producer)->Run(total, spec.payload_bytes,
                                             absl::Now() + spec.duration + absl::Minutes(2),
                                             interval);
  const bool done = (*consumer)->WaitDone(absl::Now() + absl::Seconds(60));
  const absl::Duration span = absl::Now() - start;
  const int64_t received = (*consumer)->received();
  std::vector<int64_t> all = (*consumer)->TakeLatencies();
  if (!produced.status.ok() && produced.acked == 0) return produced.status;
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

absl::StatusOr<int64_t> JetStreamPeer::Backlog(int64_t events, int payload_bytes,
                                               bool stalled_consumer,
                                               const std::function<void()>& measure) {
  if (auto s = EnsureStream(url_); !s.ok()) return s;
  if (stalled_consumer) {
    // A durable push consumer allowed 1 unacked message that never acks.
    auto c = Consumer::Create(url_, "backlog", /*credits=*/1, 1, false, false, /*ack=*/false);
    if (!c.ok()) return c.status();
    if (auto s = (*c)->Start(); !s.ok()) return s;
    auto rate = PublishWith(url_, 4, 256, payload_bytes, events, absl::Minutes(10));
    if (!rate.ok()) return rate.status();
    auto conn = Connect(url_, false);
    if (!conn.ok()) return conn.status();
    auto js = Context(conn->get(), 256, nullptr);
    if (!js.ok()) return js.status();
    jsConsumerInfo* ci = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetConsumerInfo(&ci, js->get(), kStream, "backlog", nullptr, &jerr);
    if (s != NATS_OK) return NatsError(s, "js_GetConsumerInfo backlog", jerr);
    const int64_t owed = static_cast<int64_t>(ci->NumPending) + ci->NumAckPending;
    jsConsumerInfo_Destroy(ci);
    measure();
    return owed;
  }
  auto conn = Connect(url_, false);
  if (!conn.ok()) return conn.status();
  auto js = Context(conn->get(), 256, nullptr);
  if (!js.ok()) return js.status();
  // A durable pull consumer nobody pulls from: the backlog it owes.
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = "backlog";
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddConsumer(&ci, js->get(), kStream, &cc, nullptr, &jerr);
  if (ci != nullptr) jsConsumerInfo_Destroy(ci);
  if (s != NATS_OK) return NatsError(s, "js_AddConsumer backlog", jerr);
  auto rate = PublishWith(url_, 4, 256, payload_bytes, events, absl::Minutes(10));
  if (!rate.ok()) return rate.status();
  ci = nullptr;
  s = js_GetConsumerInfo(&ci, js->get(), kStream, "backlog", nullptr, &jerr);
  if (s != NATS_OK) return NatsError(s, "js_GetConsumerInfo backlog", jerr);
  const int64_t pending = static_cast<int64_t>(ci->NumPending);
  jsConsumerInfo_Destroy(ci);
  measure();
  return pending;
}

absl::StatusOr<std::unique_ptr<IdleConsumers>> JetStreamPeer::AttachIdle(int consumers,
                                                                         int credits) {
  if (auto s = EnsureStream(url_); !s.ok()) return s;
  auto idle = std::make_unique<JetStreamIdleConsumers>();
  for (int i = 0; i < consumers; ++i) {
    auto c = Consumer::Create(url_, absl::StrCat("idle", i), credits, 1, false, false);
    if (!c.ok()) return c.status();
    if (auto s = (*c)->Start(); !s.ok()) return s;
    idle->consumers.push_back(std::move(*c));
  }
  return std::unique_ptr<IdleConsumers>(std::move(idle));
}

}  // namespace pettube::load
