#include "tests/load/host_probes.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace pettube::load {

absl::StatusOr<Rate> AppendSyncRate(const std::string& dir, int bytes, absl::Duration duration) {
  const std::string path = absl::StrCat(dir, "/append-sync-", bytes, ".dat");
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  const std::string record = MakePayload(bytes);
  Rate rate;
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  absl::Status status;
  while (absl::Now() < end) {
    if (::write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size()) ||
        ::fdatasync(fd) != 0) {
      status = absl::InternalError(absl::StrCat("append ", path, ": ", std::strerror(errno)));
      break;
    }
    ++rate.count;
  }
  rate.elapsed = absl::Now() - start;
  ::close(fd);
  ::unlink(path.c_str());
  if (!status.ok()) return status;
  return rate;
}

absl::StatusOr<Memory> ReadMemory(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  if (!in) return absl::NotFoundError(absl::StrCat("/proc/", pid, "/status: cannot read"));
  Memory m;
  std::string line;
  while (std::getline(in, line)) {
    // "VmRSS:\t  123456 kB"
    std::vector<std::string> parts =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (parts.size() < 2) continue;
    if (parts[0] == "VmRSS:") (void)absl::SimpleAtoi(parts[1], &m.rss_kib);
    if (parts[0] == "VmHWM:") (void)absl::SimpleAtoi(parts[1], &m.hwm_kib);
  }
  return m;
}

absl::StatusOr<absl::Duration> ReadCpuTime(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::stringstream text;
  text << in.rdbuf();
  const std::string stat = text.str();
  // The command name may hold spaces: fields are counted after its ')'.
  const size_t close = stat.rfind(')');
  if (!in || close == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("/proc/", pid, "/stat: cannot read"));
  }
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  // After ")": state is field 3 of stat(5), so utime (14) and stime (15)
  // are at indexes 11 and 12.
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::InternalError("stat: unexpected format");
  }
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return absl::Seconds(static_cast<double>(utime + stime) / ticks);
}

}  // namespace pettube::load
