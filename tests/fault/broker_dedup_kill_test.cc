// The broker's dedup table across SIGKILLs, over the real binary: with the
// smallest memory budget a dedup segment holds about 4,000 entries, so
// 40,000 events fill segments that are written to run files and merged
// while the broker is killed mid-publish, three times. After each restart,
// republishing every id acked so far must answer duplicate with its
// original sequence (found in a run file, or rebuilt from the log), and a
// new id must not be a duplicate.

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

constexpr int kRounds = 3;
constexpr int kPerRound = 14000;
constexpr int kPerRequest = 500;

CloudEvent EventFor(int n) {
  CloudEvent e;
  e.set_id(absl::StrCat("event-", n));
  e.set_source("//dedup-kill");
  e.set_spec_version("1.0");
  e.set_type("pettube.test.v1.Dedup");
  e.set_text_data("x");
  return e;
}

std::unique_ptr<ServiceProcess> StartBroker(const std::string& data) {
  ServiceProcess::Options options;
  options.binary = ServiceBinary("broker");
  options.data_dir = data;
  options.args = {"--memory_budget_bytes=8388608"};
  auto service = ServiceProcess::Start(std::move(options));
  EXPECT_TRUE(service.ok()) << service.status();
  return service.ok() ? std::move(*service) : nullptr;
}

// Publishes events [from, to) in unary requests, recording each acked id's
// sequence, until done or the broker goes away.
void PublishUntilGone(v1::Broker::Stub& stub, int from, int to, std::map<int, uint64_t>* acked,
                      absl::Mutex* mu) {
  for (int n = from; n < to; n += kPerRequest) {
    v1::PublishRequest request;
    for (int k = n; k < std::min(to, n + kPerRequest); ++k) *request.add_events() = EventFor(k);
    v1::PublishResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    if (!stub.Publish(&context, request, &response).ok()) return;
    absl::MutexLock lock(mu);
    for (int i = 0; i < response.results_size(); ++i) {
      ASSERT_EQ(response.results(i).status().code(), 0) << response.results(i).status().message();
      (*acked)[n + i] = response.results(i).sequence();
    }
  }
}

TEST(BrokerDedupKillTest, AckedIdsStayDuplicatesAcrossKillsMidPublish) {
  const std::string data = NewTempDir("broker-dedup-kill");
  std::map<int, uint64_t> acked;
  absl::Mutex mu;
  for (int round = 0; round <= kRounds; ++round) {
    auto broker = StartBroker(data);
    ASSERT_NE(broker, nullptr);
    auto channel = grpc::CreateChannel(broker->grpc(), grpc::InsecureChannelCredentials());
    auto stub = v1::Broker::NewStub(channel);

    // Everything acked before (in earlier rounds) is a duplicate now, with
    // the sequence it was given.
    std::vector<int> ids;
    {
      absl::MutexLock lock(&mu);
      for (const auto& [n, seq] : acked) ids.push_back(n);
    }
    int mismatched = 0;
    for (size_t i = 0; i < ids.size(); i += kPerRequest) {
      v1::PublishRequest request;
      for (size_t k = i; k < std::min(ids.size(), i + kPerRequest); ++k) {
        *request.add_events() = EventFor(ids[k]);
      }
      v1::PublishResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
      ASSERT_TRUE(stub->Publish(&context, request, &response).ok());
      absl::MutexLock lock(&mu);
      for (int r = 0; r < response.results_size(); ++r) {
        const int n = ids[i + r];
        mismatched +=
            !response.results(r).duplicate() || response.results(r).sequence() != acked[n];
      }
    }
    EXPECT_EQ(mismatched, 0) << "round " << round << ": of " << ids.size() << " acked ids";
    if (round == kRounds) break;

    // More events, and a SIGKILL in the middle of them.
    const int from = round * kPerRound;
    std::thread publisher([&] { PublishUntilGone(*stub, from, from + kPerRound, &acked, &mu); });
    for (;;) {
      absl::SleepFor(absl::Milliseconds(20));
      absl::MutexLock lock(&mu);
      if (acked.size() >= static_cast<size_t>(from + kPerRound * 2 / 3)) break;
    }
    ASSERT_TRUE(broker->Kill().ok());
    publisher.join();
  }
  // A new id is not a duplicate.
  auto broker = StartBroker(data);
  ASSERT_NE(broker, nullptr);
  auto stub =
      v1::Broker::NewStub(grpc::CreateChannel(broker->grpc(), grpc::InsecureChannelCredentials()));
  v1::PublishRequest request;
  *request.add_events() = EventFor(10 * kRounds * kPerRound);
  v1::PublishResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  ASSERT_TRUE(stub->Publish(&context, request, &response).ok());
  EXPECT_FALSE(response.results(0).duplicate());
  EXPECT_GT(acked.size(), static_cast<size_t>(kRounds * kPerRound / 2));
}

}  // namespace
}  // namespace pettube
