#include "tests/e2e/local_stack.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace pettube::e2e {
namespace {

// Workload clients and their scopes, as scripts/up.sh provisions them.
const std::map<std::string, std::vector<std::string>>& Clients() {
  static const auto* clients = new std::map<std::string, std::vector<std::string>>{
      {"upload", {"events.publish", "events.subscribe"}},
      {"media-catalog", {"events.publish", "events.subscribe"}},
      {"transcode-coordinator",
       {"events.publish", "events.subscribe", "objects.read", "objects.write"}},
      {"transcode-worker", {"events.publish", "events.subscribe", "objects.read", "objects.write"}},
      {"transcode-supervisor", {"events.subscribe"}},
      {"pettube-admin",
       {"events.publish", "events.subscribe", "events.admin", "objects.read", "objects.write"}},
  };
  return *clients;
}

std::string RandomBase64(int bytes) {
  std::random_device rd;
  std::string raw(bytes, '\0');
  for (char& c : raw) c = static_cast<char>(rd());
  return absl::Base64Escape(raw);
}

std::string KeyOf(const std::string& service) {
  if (service == "auth-token-exchange") return "AUTH";
  if (service == "media-catalog") return "CATALOG";
  if (service == "transcode-coordinator") return "TRANSCODE";
  if (service == "transcode-worker") return "WORKER";
  std::string key = service;
  for (char& c : key) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return key;
}

}  // namespace

const std::vector<std::string>& LocalStack::AllServices() {
  static const auto* all = new std::vector<std::string>{
      "auth-token-exchange",   "broker",          "upload", "media-catalog",
      "transcode-coordinator", "transcode-worker"};
  return *all;
}

absl::StatusOr<std::unique_ptr<LocalStack>> LocalStack::Start(const std::string& dir,
                                                              const std::string& runfiles_root,
                                                              std::vector<std::string> services) {
  std::unique_ptr<LocalStack> stack(new LocalStack());
  stack->dir_ = dir;
  stack->runfiles_root_ = runfiles_root;
  std::filesystem::create_directories(dir + "/secrets");
  std::filesystem::create_directories(dir + "/logs");
  std::vector<std::string> entries;
  for (const auto& [client, scopes] : Clients()) {
    const std::string file = stack->SecretFile(client);
    if (!std::filesystem::exists(file)) std::ofstream(file) << RandomBase64(32);
    entries.push_back(absl::StrCat("{\"client_id\": \"", client, "\", \"secret_file\": \"", file,
                                   "\", \"scopes\": [\"", absl::StrJoin(scopes, "\", \""), "\"]}"));
  }
  std::ofstream(dir + "/secrets/workload-clients.json")
      << "[" << absl::StrJoin(entries, ",\n") << "]\n";
  const std::string keys = dir + "/secrets/url-signing-keys";
  if (!std::filesystem::exists(keys)) std::ofstream(keys) << "k1 " << RandomBase64(32) << "\n";
  for (const std::string& s : services) {
    if (auto st = stack->StartService(s); !st.ok()) return st;
  }
  return stack;
}

LocalStack::~LocalStack() {
  for (auto it = started_order_.rbegin(); it != started_order_.rend(); ++it) {
    if (Running(*it)) processes_[*it]->process().Signal(SIGTERM);
  }
  for (auto it = started_order_.rbegin(); it != started_order_.rend(); ++it) {
    if (processes_.count(*it)) (void)processes_[*it]->process().WaitForExit(absl::Seconds(20));
  }
}

std::string LocalStack::SecretFile(const std::string& client) const {
  return absl::StrCat(dir_, "/secrets/", client, ".secret");
}

std::string LocalStack::LogPath(const std::string& name) const {
  return absl::StrCat(dir_, "/logs/", name, ".log");
}

std::vector<std::string> LocalStack::ArgsFor(const std::string& name) const {
  std::vector<std::string> args = {"--metrics_listen=127.0.0.1:0",
                                   absl::StrCat("--data_dir=", dir_, "/data/", name)};
  auto at = [this](const std::string& s) {
    auto it = grpc_.find(s);
    return it == grpc_.end() ? std::string() : it->second;
  };
  if (name == "auth-token-exchange") {
    args.push_back("--dev_idp");
    args.push_back(
        absl::StrCat("--workload_clients_file=", dir_, "/secrets/workload-clients.json"));
    return args;
  }
  args.push_back(absl::StrCat("--auth_server=", at("auth-token-exchange")));
  if (name == "broker") return args;
  args.push_back(absl::StrCat("--broker_server=", at("broker")));
  args.push_back(absl::StrCat("--client_id=", name));
  args.push_back(absl::StrCat("--client_secret_file=", SecretFile(name)));
  if (name == "upload") {
    args.push_back("--objects_listen=127.0.0.1:0");
    args.push_back(absl::StrCat("--url_signing_keys_file=", dir_, "/secrets/url-signing-keys"));
  }
  if (name == "media-catalog") {
    args.push_back(absl::StrCat("--objects_url=http://", objects_));
    args.push_back(absl::StrCat("--url_signing_keys_file=", dir_, "/secrets/url-signing-keys"));
  }
  if (name == "transcode-coordinator" || name == "transcode-worker") {
    args.push_back(absl::StrCat("--objects_url=http://", objects_));
    args.push_back(absl::StrCat("--upload_server=", at("upload")));
  }
  if (name == "transcode-worker") {
    args.push_back(absl::StrCat("--coordinator=", at("transcode-coordinator")));
  }
  if (name == "transcode-supervisor") {
    // Its workers dial the same peers with the worker's credentials.
    args.push_back(absl::StrCat("--worker_binary=", runfiles_root_,
                                "/services/transcode-worker/transcode-worker"));
    args.push_back(absl::StrCat(
        "--worker_args=--auth_server=", at("auth-token-exchange"),
        ",--broker_server=", at("broker"), ",--client_id=transcode-worker,--client_secret_file=",
        SecretFile("transcode-worker"), ",--objects_url=http://", objects_,
        ",--upload_server=", at("upload"), ",--coordinator=", at("transcode-coordinator")));
  }
  return args;
}

absl::Status LocalStack::StartService(const std::string& name, bool same_port) {
  if (Running(name)) return absl::FailedPreconditionError(absl::StrCat(name, " is running"));
  std::vector<std::string> args = ArgsFor(name);
  const std::string listen =
      same_port && grpc_.count(name) ? grpc_.at(name) : std::string("127.0.0.1:0");
  if (same_port && name == "upload" && !objects_.empty()) {
    for (std::string& a : args) {
      if (a == "--objects_listen=127.0.0.1:0") a = absl::StrCat("--objects_listen=", objects_);
    }
  }
  testing::ServiceProcess::Options options;
  options.binary = absl::StrCat(runfiles_root_, "/services/", name, "/", name);
  options.listen = listen;
  options.metrics_listen.clear();  // ArgsFor has it, and --data_dir
  options.args = std::move(args);
  options.stderr_path = LogPath(name);
  auto service = testing::ServiceProcess::Start(std::move(options));
  if (!service.ok()) {
    return absl::UnavailableError(absl::StrCat("did not start: ", service.status().message()));
  }
  grpc_[name] = (*service)->grpc();
  metrics_[name] = (*service)->metrics();
  if (name == "upload") objects_ = (*service)->ReadyField("objects");
  processes_[name] = std::move(*service);
  if (std::find(started_order_.begin(), started_order_.end(), name) == started_order_.end()) {
    started_order_.push_back(name);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> LocalStack::StopService(const std::string& name, int signal_number) {
  auto it = processes_.find(name);
  if (it == processes_.end()) return absl::NotFoundError(absl::StrCat(name, " never started"));
  it->second->process().Signal(signal_number);
  auto code = it->second->process().WaitForExit(absl::Seconds(30));
  if (code.ok()) processes_.erase(it);
  return code;
}

bool LocalStack::Running(const std::string& name) const { return processes_.count(name) > 0; }

pid_t LocalStack::Pid(const std::string& name) const {
  auto it = processes_.find(name);
  return it == processes_.end() ? -1 : it->second->process().pid();
}

std::string LocalStack::Grpc(const std::string& name) const {
  auto it = grpc_.find(name);
  return it == grpc_.end() ? std::string() : it->second;
}

std::string LocalStack::Objects() const { return objects_; }

std::string LocalStack::EndpointsFile() const {
  std::string out = "# PetTube e2e stack\n";
  for (const auto& [name, address] : grpc_) {
    absl::StrAppend(&out, "PETTUBE_", KeyOf(name), "=", address, "\n");
  }
  if (!objects_.empty()) absl::StrAppend(&out, "PETTUBE_OBJECTS=", objects_, "\n");
  return out;
}

}  // namespace pettube::e2e
