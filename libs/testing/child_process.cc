#include "libs/testing/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace pettube::testing {
namespace {

int RemainingMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::string& binary, const std::vector<std::string>& args,
    const std::string& stderr_path) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  const int err_fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (err_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", stderr_path));

  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out[1], STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  ::close(out[1]);
  ::close(err_fd);
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->stdout_fd_ = out[0];
  child->stderr_path_ = stderr_path;
  // A pidfd becomes readable when the process exits: wait with poll().
  child->pid_fd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (child->pid_fd_ < 0) return absl::InternalError("pidfd_open failed");
  return child;
}

ChildProcess::~ChildProcess() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (pid_fd_ >= 0) ::close(pid_fd_);
}

absl::StatusOr<std::string> ChildProcess::WaitForReady(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    size_t newline;
    while ((newline = stdout_buffer_.find('\n')) != std::string::npos) {
      std::string line = stdout_buffer_.substr(0, newline);
      stdout_buffer_.erase(0, newline + 1);
      if (line.rfind("ready ", 0) == 0) return line;
    }
    pollfd pfd{stdout_fd_, POLLIN, 0};
    const int rc = ::poll(&pfd, 1, RemainingMs(deadline));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no ready line within ", absl::FormatDuration(timeout), "; stderr: ", Stderr()));
    }
    char buf[4096];
    const ssize_t n = ::read(stdout_fd_, buf, sizeof(buf));
    if (n <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("process closed stdout before ready; stderr: ", Stderr()));
    }
    stdout_buffer_.append(buf, n);
  }
}

absl::StatusOr<int> ChildProcess::WaitForExit(absl::Duration timeout) {
  if (exited_) return exit_code_;
  pollfd pfd{pid_fd_, POLLIN, 0};
  const absl::Time deadline = absl::Now() + timeout;
  int rc;
  do {
    rc = ::poll(&pfd, 1, RemainingMs(deadline));
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    return absl::DeadlineExceededError(
        absl::StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
  }
  int status = 0;
  waitpid(pid_, &status, 0);
  exited_ = true;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_code_;
}

void ChildProcess::Signal(int signal_number) {
  if (!exited_) ::kill(pid_, signal_number);
}

std::string ChildProcess::Stderr() const {
  std::ifstream in(stderr_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ReadyField(const std::string& ready_line, const std::string& key) {
  for (absl::string_view part : absl::StrSplit(ready_line, ' ')) {
    if (part.size() > key.size() && part.substr(0, key.size()) == key && part[key.size()] == '=') {
      return std::string(part.substr(key.size() + 1));
    }
  }
  return "";
}

std::string RunfilePath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir == nullptr ? "." : srcdir, "/pettube/", workspace_relative);
}

std::string NewTempDir(const std::string& name) {
  static int counter = 0;
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp == nullptr ? "/tmp" : tmp, "/", name, "-", ++counter);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace pettube::testing
