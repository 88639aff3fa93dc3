#pragma once

// What broker_bench measures outside the systems under test: the disk's own
// append+fdatasync rate (the ceiling of a log that syncs every message) and
// a server process's memory and CPU time from /proc.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/load/bench_peer.h"

namespace pettube::load {

// Appends `bytes`-byte records to a new file in `dir`, each followed by
// fdatasync, for `duration`; returns records per second. Removes the file.
absl::StatusOr<Rate> AppendSyncRate(const std::string& dir, int bytes, absl::Duration duration);

struct Memory {
  int64_t rss_kib = 0;  // VmRSS
  int64_t hwm_kib = 0;  // VmHWM: peak RSS
};
absl::StatusOr<Memory> ReadMemory(int pid);

// User + system CPU time the process has used so far.
absl::StatusOr<absl::Duration> ReadCpuTime(int pid);

}  // namespace pettube::load
