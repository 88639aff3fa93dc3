#include "cli/pettube/progress.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pettube::cli {

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (v >= 1024 && unit < 3) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat(unit >= 2 ? "%.2f %s" : "%.1f %s", v, kUnits[unit]);
}

std::string FormatRate(double bytes_per_second) {
  if (!(bytes_per_second > 0) || std::isinf(bytes_per_second)) return "-";
  return absl::StrCat(FormatBytes(static_cast<int64_t>(bytes_per_second)), "/s");
}

namespace {
std::string Clock(int64_t seconds) {
  const int64_t h = seconds / 3600, m = (seconds / 60) % 60, s = seconds % 60;
  if (h > 0) return absl::StrFormat("%d:%02d:%02d", h, m, s);
  return absl::StrFormat("%d:%02d", m, s);
}
}  // namespace

std::string FormatEta(absl::Duration remaining, bool known) {
  if (!known || remaining < absl::ZeroDuration() || remaining == absl::InfiniteDuration()) {
    return "--:--";
  }
  return Clock(absl::ToInt64Seconds(absl::Ceil(remaining, absl::Seconds(1))));
}

std::string FormatMediaDuration(absl::Duration d) {
  if (d < absl::Minutes(1)) return absl::StrFormat("%.1f s", absl::ToDoubleSeconds(d));
  return Clock(absl::ToInt64Seconds(d));
}

std::string FormatAge(absl::Duration age) {
  if (age < absl::Seconds(1)) return "just now";
  if (age < absl::Minutes(1)) return absl::StrCat(absl::ToInt64Seconds(age), " s ago");
  if (age < absl::Hours(1)) return absl::StrCat(absl::ToInt64Minutes(age), " min ago");
  if (age < absl::Hours(24)) return absl::StrCat(absl::ToInt64Hours(age), " h ago");
  return absl::StrCat(absl::ToInt64Hours(age) / 24, " d ago");
}

std::string FormatTransferLine(int64_t done, int64_t total, int64_t run_bytes,
                               absl::Duration elapsed, int bar_width) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  const double rate = seconds > 0 ? run_bytes / seconds : 0;
  if (total <= 0) return absl::StrCat(FormatBytes(done), "  ", FormatRate(rate));
  const double fraction = std::clamp(static_cast<double>(done) / total, 0.0, 1.0);
  const int filled = static_cast<int>(fraction * bar_width);
  const bool finished = done >= total;
  const bool eta_known = finished || rate > 0;
  const absl::Duration eta = finished ? absl::ZeroDuration()
                             : rate > 0 ? absl::Seconds((total - done) / rate)
                                        : absl::ZeroDuration();
  return absl::StrFormat("[%s%s] %3d%%  %s / %s  %s  ETA %s", std::string(filled, '#'),
                         std::string(bar_width - filled, '-'), static_cast<int>(fraction * 100),
                         FormatBytes(done), FormatBytes(total), FormatRate(rate),
                         FormatEta(eta, eta_known));
}

TransferProgress::TransferProgress(std::string label, int64_t total, bool terminal,
                                   std::function<void(const std::string&)> write,
                                   std::function<absl::Time()> now)
    : label_(std::move(label)),
      total_(total),
      terminal_(terminal),
      write_(std::move(write)),
      now_(std::move(now)) {}

void TransferProgress::Start(int64_t start_offset) {
  start_ = now_();
  start_offset_ = start_offset;
  if (start_offset > 0) {
    write_(absl::StrCat(label_, ": resuming at ", FormatBytes(start_offset), "\n"));
  }
  Emit(start_offset, false);
}

void TransferProgress::Update(int64_t done) { Emit(done, false); }

void TransferProgress::Finish(int64_t done) { Emit(done, true); }

void TransferProgress::Emit(int64_t done, bool final) {
  const absl::Time now = now_();
  const std::string line = absl::StrCat(
      label_, " ",
      FormatTransferLine(done, total_, std::max<int64_t>(0, done - start_offset_), now - start_));
  if (terminal_) {
    if (!final && now - last_draw_ < absl::Milliseconds(100)) return;
    last_draw_ = now;
    write_(absl::StrCat("\r\x1b[2K", line, final ? "\n" : ""));
    return;
  }
  // Plain lines: one per 10% step (per 8 MiB when the size is unknown), and
  // the final state unless that step was just printed.
  const int64_t step = total_ > 0 ? done * 10 / total_ : done / (8 << 20);
  if (final ? done == last_printed_ : step == last_step_) return;
  last_step_ = step;
  last_printed_ = done;
  write_(absl::StrCat(line, "\n"));
}

}  // namespace pettube::cli
