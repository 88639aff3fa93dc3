#include "tests/load/bench_peer.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace pettube::load {

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string MakePayload(int bytes) {
  std::string payload(static_cast<size_t>(std::max(bytes, 8)), '\0');
  // Not all zeros, so nothing on the way can shortcut an empty page.
  for (size_t i = 8; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  return payload;
}

void StampNow(char* payload) {
  const int64_t now = MonotonicNanos();
  std::memcpy(payload, &now, sizeof(now));
}

int64_t ReadStamp(const void* payload, size_t size) {
  if (size < sizeof(int64_t)) return -1;
  int64_t stamp;
  std::memcpy(&stamp, payload, sizeof(stamp));
  return stamp;
}

Percentiles Summarize(std::vector<int64_t> nanos) {
  Percentiles p;
  p.samples = static_cast<int64_t>(nanos.size());
  if (nanos.empty()) return p;
  std::sort(nanos.begin(), nanos.end());
  auto rank = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(nanos.size())));
    i = std::clamp<size_t>(i, 1, nanos.size());
    return static_cast<double>(nanos[i - 1]) / 1e6;
  };
  p.p50_ms = rank(0.50);
  p.p99_ms = rank(0.99);
  p.p999_ms = rank(0.999);
  p.max_ms = static_cast<double>(nanos.back()) / 1e6;
  return p;
}

}  // namespace pettube::load
