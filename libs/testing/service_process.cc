#include "libs/testing/service_process.h"

#include <signal.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace pettube::testing {
namespace {

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string ServiceBinary(const std::string& name) {
  return RunfilePath(absl::StrCat("services/", name, "/", name));
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> StartService(const std::string& name,
                                                             std::vector<std::string> args,
                                                             absl::Duration ready_timeout) {
  const std::string dir = NewTempDir(name);
  ServiceProcess::Options options;
  options.binary = ServiceBinary(name);
  options.data_dir = dir + "/data";
  options.args = std::move(args);
  options.stderr_path = dir + "/stderr.log";
  options.ready_timeout = ready_timeout;
  return ServiceProcess::Start(std::move(options));
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Start(Options options) {
  std::unique_ptr<ServiceProcess> service(new ServiceProcess(std::move(options)));
  if (absl::Status s = service->Launch(); !s.ok()) return s;
  return service;
}

absl::Status ServiceProcess::Launch() {
  std::vector<std::string> args;
  if (!options_.listen.empty()) args.push_back("--listen=" + options_.listen);
  if (!options_.metrics_listen.empty()) {
    args.push_back("--metrics_listen=" + options_.metrics_listen);
  }
  if (!options_.data_dir.empty()) args.push_back("--data_dir=" + options_.data_dir);
  args.insert(args.end(), options_.args.begin(), options_.args.end());
  const std::string stderr_path = options_.stderr_path.empty()
                                      ? NewTempDir(BaseName(options_.binary)) + "/stderr.log"
                                      : options_.stderr_path;
  auto process = ChildProcess::Start(options_.binary, args, stderr_path);
  if (!process.ok()) return process.status();
  process_ = std::move(*process);
  auto ready = process_->WaitForReady(options_.ready_timeout);
  if (!ready.ok()) {
    return absl::Status(ready.status().code(),
                        absl::StrCat(BaseName(options_.binary), ": ", ready.status().message()));
  }
  ready_line_ = *ready;
  grpc_ = testing::ReadyField(ready_line_, "grpc");
  metrics_ = testing::ReadyField(ready_line_, "metrics");
  return absl::OkStatus();
}

std::string ServiceProcess::ReadyField(const std::string& key) const {
  return testing::ReadyField(ready_line_, key);
}

absl::StatusOr<int> ServiceProcess::Stop(absl::Duration timeout) {
  process_->Signal(SIGTERM);
  return process_->WaitForExit(timeout);
}

absl::Status ServiceProcess::Kill(absl::Duration timeout) {
  process_->Signal(SIGKILL);
  return process_->WaitForExit(timeout).status();
}

absl::Status ServiceProcess::Restart(bool same_ports) {
  if (absl::Status s = Kill(); !s.ok()) return s;
  if (same_ports) {
    options_.listen = grpc_;
    if (!metrics_.empty()) options_.metrics_listen = metrics_;
  }
  return Launch();
}

}  // namespace pettube::testing
