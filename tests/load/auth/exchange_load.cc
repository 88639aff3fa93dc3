// ghz-style load for TokenExchange.ExchangeToken (ghz itself is not
// packaged here): C concurrent in-flight calls over one channel for a fixed
// duration, each reissuing as soon as the previous one finishes; prints
// requests/s and latency percentiles. The ID token comes from the dev
// identity provider of the server under test.
//
//   exchange_load --target=127.0.0.1:PORT --concurrency=8 --duration=10s

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "proto/pettube/auth/v1/auth.grpc.pb.h"

ABSL_FLAG(std::string, target, "", "auth-token-exchange address");
ABSL_FLAG(int, concurrency, 8, "calls in flight");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "how long to send");

namespace {

using pettube::auth::v1::ExchangeTokenRequest;
using pettube::auth::v1::ExchangeTokenResponse;
using pettube::auth::v1::TokenExchange;

// Keeps one call in flight, back to back, until the deadline.
class Worker {
 public:
  Worker(TokenExchange::Stub* stub, const ExchangeTokenRequest& request, absl::Time until,
         std::atomic<int>* running, absl::Notification* all_done)
      : stub_(stub), request_(request), until_(until), running_(running), all_done_(all_done) {}

  void Start() { Issue(); }
  const std::vector<double>& latencies_ms() const { return latencies_; }
  int errors() const { return errors_; }

 private:
  void Issue() {
    if (absl::Now() >= until_) {
      if (running_->fetch_sub(1) == 1) all_done_->Notify();
      return;
    }
    context_ = std::make_unique<grpc::ClientContext>();
    start_ = absl::Now();
    stub_->async()->ExchangeToken(context_.get(), &request_, &response_, [this](grpc::Status s) {
      latencies_.push_back(absl::ToDoubleMilliseconds(absl::Now() - start_));
      if (!s.ok()) ++errors_;
      Issue();
    });
  }

  TokenExchange::Stub* stub_;
  ExchangeTokenRequest request_;
  ExchangeTokenResponse response_;
  std::unique_ptr<grpc::ClientContext> context_;
  absl::Time start_;
  const absl::Time until_;
  std::atomic<int>* running_;
  absl::Notification* all_done_;
  std::vector<double> latencies_;
  int errors_ = 0;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials());
  auto stub = TokenExchange::NewStub(channel);
  auto idp = pettube::auth::v1::DevIdentityProvider::NewStub(channel);
  grpc::ClientContext mint_ctx;
  pettube::auth::v1::MintIdTokenRequest mint;
  mint.set_user("load-test");
  pettube::auth::v1::MintIdTokenResponse minted;
  if (grpc::Status s = idp->MintIdToken(&mint_ctx, mint, &minted); !s.ok()) {
    std::fprintf(stderr, "MintIdToken: %s\n", s.error_message().c_str());
    return 1;
  }
  ExchangeTokenRequest request;
  request.set_subject_token(minted.id_token());
  request.set_subject_token_type("urn:ietf:params:oauth:token-type:id_token");

  const int c = absl::GetFlag(FLAGS_concurrency);
  const absl::Time start = absl::Now();
  const absl::Time until = start + absl::GetFlag(FLAGS_duration);
  std::atomic<int> running{c};
  absl::Notification done;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < c; ++i) {
    workers.push_back(std::make_unique<Worker>(stub.get(), request, until, &running, &done));
  }
  for (auto& w : workers) w->Start();
  done.WaitForNotification();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> all;
  int errors = 0;
  for (auto& w : workers) {
    all.insert(all.end(), w->latencies_ms().begin(), w->latencies_ms().end());
    errors += w->errors();
  }
  const size_t n = all.size();
  std::printf(
      "concurrency=%d requests=%zu errors=%d rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f\n", c, n,
      errors, n / seconds, Percentile(all, 0.50), Percentile(all, 0.90), Percentile(all, 0.99));
  return errors == 0 ? 0 : 1;
}
