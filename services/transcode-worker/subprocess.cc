#include "services/transcode-worker/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace pettube::transcode {
namespace {

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(Options options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("argv: must name a program");
  }
  int out[2], err[2], wake[2];
  if (pipe2(out, O_CLOEXEC) != 0)
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]), close(out[1]);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  // Everything the child needs is built before fork: after it, in a
  // multi-threaded parent, only async-signal-safe calls are allowed.
  std::vector<char*> argv, envp;
  for (auto& a : options.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : options.env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = getpid();
  const bool inherit_stderr = options.inherit_stderr;
  const bool die_with_parent = options.die_with_parent;

  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1], wake[0], wake[1]}) close(fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(e)));
  }
  if (pid == 0) {
    // Child. Die with the parent; signals back to defaults and unblocked
    // (the parent blocks SIGTERM for sigwait).
    if (die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out[1], 1);
    if (!inherit_stderr) dup2(err[1], 2);
    execve(argv[0], argv.data(), envp.data());
    const char* msg = "exec failed: ";
    (void)!write(2, msg, strlen(msg));
    const char* why = strerror(errno);
    (void)!write(2, why, strlen(why));
    (void)!write(2, "\n", 1);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  if (inherit_stderr) {
    close(err[0]);
    err[0] = -1;
  }
  auto p = std::unique_ptr<Subprocess>(new Subprocess());
  p->options_ = std::move(options);
  p->pid_ = pid;
  p->stdout_fd_ = out[0];
  p->stderr_fd_ = err[0];
  p->wake_read_fd_ = wake[0];
  p->wake_write_fd_ = wake[1];
  p->start_ = absl::Now();
  return p;
}

Subprocess::~Subprocess() {
  bool reaped;
  {
    absl::MutexLock lock(&mu_);
    reaped = reaped_;
  }
  if (!reaped && pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);
  CloseFd(wake_read_fd_);
  CloseFd(wake_write_fd_);
}

void Subprocess::Cancel() {
  absl::MutexLock lock(&mu_);
  if (cancel_requested_) return;
  cancel_requested_ = true;
  if (wake_write_fd_ >= 0) (void)!write(wake_write_fd_, "x", 1);
}

void Subprocess::Signal(int signal_number) {
  absl::MutexLock lock(&mu_);
  if (!reaped_ && pid_ > 0) kill(pid_, signal_number);
}

Subprocess::Result Subprocess::Wait() {
  Result result;
  const absl::Time deadline = options_.timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : start_ + options_.timeout;
  std::string line_buffer;
  bool killed = false;
  char buf[16384];
  while (stdout_fd_ >= 0 || stderr_fd_ >= 0) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, wake_i = -1;
    if (stdout_fd_ >= 0) fds[out_i = n++] = {stdout_fd_, POLLIN, 0};
    if (stderr_fd_ >= 0) fds[err_i = n++] = {stderr_fd_, POLLIN, 0};
    if (!killed) fds[wake_i = n++] = {wake_read_fd_, POLLIN, 0};
    int wait_ms = -1;
    if (!killed && deadline != absl::InfiniteFuture()) {
      const absl::Duration left = deadline - absl::Now();
      wait_ms = left <= absl::ZeroDuration()
                    ? 0
                    : static_cast<int>(absl::ToInt64Milliseconds(left + absl::Milliseconds(1)));
    }
    const int ready = poll(fds, n, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (!killed && deadline != absl::InfiniteFuture() && absl::Now() >= deadline) {
      kill(pid_, SIGKILL);
      killed = true;
      result.timed_out = true;
    }
    if (wake_i >= 0 && (fds[wake_i].revents & POLLIN) && !killed) {
      kill(pid_, SIGKILL);
      killed = true;
      result.cancelled = true;
    }
    if (out_i >= 0 && (fds[out_i].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t got = read(stdout_fd_, buf, sizeof(buf));
      if (got <= 0) {
        if (got < 0 && errno == EINTR) continue;
        CloseFd(stdout_fd_);
      } else if (options_.on_stdout_line) {
        line_buffer.append(buf, static_cast<size_t>(got));
        size_t start = 0, nl;
        while ((nl = line_buffer.find('\n', start)) != std::string::npos) {
          options_.on_stdout_line(absl::string_view(line_buffer).substr(start, nl - start));
          start = nl + 1;
        }
        line_buffer.erase(0, start);
      } else if (result.stdout_text.size() < options_.max_stdout_bytes) {
        const size_t room = options_.max_stdout_bytes - result.stdout_text.size();
        result.stdout_text.append(buf, std::min(room, static_cast<size_t>(got)));
        if (static_cast<size_t>(got) > room) result.stdout_truncated = true;
      } else {
        result.stdout_truncated = true;
      }
    }
    if (err_i >= 0 && (fds[err_i].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t got = read(stderr_fd_, buf, sizeof(buf));
      if (got <= 0) {
        if (got < 0 && errno == EINTR) continue;
        CloseFd(stderr_fd_);
      } else {
        result.stderr_tail.append(buf, static_cast<size_t>(got));
        if (result.stderr_tail.size() > options_.stderr_tail_bytes) {
          result.stderr_tail.erase(0, result.stderr_tail.size() - options_.stderr_tail_bytes);
        }
      }
    }
  }
  if (options_.on_stdout_line && !line_buffer.empty()) options_.on_stdout_line(line_buffer);
  // Wait for the exit without reaping, then reap under the lock, so Signal
  // never hits a recycled pid.
  siginfo_t info;
  while (waitid(P_PID, pid_, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  int status = 0;
  {
    absl::MutexLock lock(&mu_);
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  {
    absl::MutexLock lock(&mu_);
    if (cancel_requested_ && result.signal == SIGKILL && !result.timed_out) result.cancelled = true;
  }
  result.elapsed = absl::Now() - start_;
  return result;
}

}  // namespace pettube::transcode
