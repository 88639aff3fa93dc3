#pragma once

// Progress display for transfers (upload, download) and transcoding
// (watch): a redrawn bar on a terminal, plain lines otherwise (logs,
// pipes, CI), so scripts get something readable without control codes.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pettube::cli {

// "0 B", "999 B", "1.0 KiB", "12.3 MiB", "1.50 GiB".
std::string FormatBytes(int64_t bytes);
// "12.3 MiB/s"; "-" when nothing has been measured yet.
std::string FormatRate(double bytes_per_second);
// "0:05", "12:34", "1:02:03"; "--:--" when unknown.
std::string FormatEta(absl::Duration remaining, bool known);
// "1.5 s", "2:05", "1:02:03" (a media's length).
std::string FormatMediaDuration(absl::Duration d);
// "just now", "5 s ago", "3 min ago", "2 h ago", "4 d ago".
std::string FormatAge(absl::Duration age);

// One line of transfer progress, e.g.
//   "[##########----------]  50%  1.0 MiB / 2.0 MiB  512.0 KiB/s  ETA 0:02"
// The bar and sizes show `done` of `total`; the rate (and so the ETA) is
// `run_bytes` moved in `elapsed` (a resumed transfer's earlier bytes do not
// count). `total` <= 0: unknown size (no bar, percentage or ETA).
std::string FormatTransferLine(int64_t done, int64_t total, int64_t run_bytes,
                               absl::Duration elapsed, int bar_width = 20);

// Reports a transfer's progress. On a terminal, redraws one line at most
// every 100 ms (and always at the end); otherwise prints a plain line at
// every 10% step (or every 8 MiB when the size is unknown) and at the end.
// Not thread-safe.
class TransferProgress {
 public:
  // `write` receives text exactly as it should be printed.
  TransferProgress(std::string label, int64_t total, bool terminal,
                   std::function<void(const std::string&)> write,
                   std::function<absl::Time()> now = absl::Now);

  // `start_offset`: bytes already done before this run (a resume): they
  // count toward the percentage but not the rate.
  void Start(int64_t start_offset);
  void Update(int64_t done);
  void Finish(int64_t done);

 private:
  void Emit(int64_t done, bool final);

  const std::string label_;
  const int64_t total_;
  const bool terminal_;
  std::function<void(const std::string&)> write_;
  std::function<absl::Time()> now_;
  absl::Time start_ = absl::InfinitePast();
  int64_t start_offset_ = 0;
  absl::Time last_draw_ = absl::InfinitePast();
  int64_t last_step_ = -1;
  int64_t last_printed_ = -1;
};

}  // namespace pettube::cli
