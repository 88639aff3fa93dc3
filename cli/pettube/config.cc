#include "cli/pettube/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace pettube::cli {

using nlohmann::json;

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

absl::StatusOr<std::string> ConfigDir(const EnvLookup& env) {
  if (auto xdg = env("XDG_CONFIG_HOME")) return absl::StrCat(*xdg, "/pettube");
  if (auto home = env("HOME")) return absl::StrCat(*home, "/.config/pettube");
  return absl::FailedPreconditionError(
      "config directory: neither XDG_CONFIG_HOME nor HOME is set");
}

absl::Status WritePrivateFile(const std::string& path, const std::string& contents) {
  const std::filesystem::path p(path);
  std::error_code ec;
  if (p.has_parent_path() && !std::filesystem::exists(p.parent_path(), ec)) {
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) return absl::InternalError(absl::StrCat(p.parent_path().string(), ": ", ec.message()));
    ::chmod(p.parent_path().c_str(), 0700);
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat(tmp, ": ", std::strerror(errno)));
  ::fchmod(fd, 0600);  // Whatever the umask.
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat(tmp, ": ", std::strerror(err)));
    }
    written += n;
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::InternalError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, n);
  }
  ::close(fd);
  return out;
}

namespace {
int64_t ToUnix(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixSeconds(t); }
absl::Time FromUnix(int64_t s) { return s == 0 ? absl::InfinitePast() : absl::FromUnixSeconds(s); }
}  // namespace

std::string SerializeCredentials(const Credentials& c) {
  json j = {
      {"auth_server", c.auth_server},
      {"login", c.login},
      {"user", c.user},
      {"id_token", c.id_token},
      {"id_token_expire_unix", ToUnix(c.id_token_expire_time)},
      {"access_token", c.access_token},
      {"expire_unix", ToUnix(c.expire_time)},
      {"identity", c.identity},
      {"scopes", c.scopes},
  };
  return j.dump(2) + "\n";
}

absl::StatusOr<Credentials> ParseCredentials(const std::string& text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("credentials: not a JSON object");
  }
  Credentials c;
  auto str = [&](const char* key, std::string* out) -> absl::Status {
    if (!j.contains(key)) return absl::OkStatus();
    if (!j[key].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("credentials.", key, ": must be a string"));
    }
    *out = j[key].get<std::string>();
    return absl::OkStatus();
  };
  auto num = [&](const char* key, absl::Time* out) -> absl::Status {
    if (!j.contains(key)) return absl::OkStatus();
    if (!j[key].is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat("credentials.", key, ": must be an integer"));
    }
    *out = FromUnix(j[key].get<int64_t>());
    return absl::OkStatus();
  };
  for (auto s : {str("auth_server", &c.auth_server), str("login", &c.login), str("user", &c.user),
                 str("id_token", &c.id_token), str("access_token", &c.access_token),
                 str("identity", &c.identity), num("id_token_expire_unix", &c.id_token_expire_time),
                 num("expire_unix", &c.expire_time)}) {
    if (!s.ok()) return s;
  }
  if (j.contains("scopes")) {
    if (!j["scopes"].is_array()) {
      return absl::InvalidArgumentError("credentials.scopes: must be an array of strings");
    }
    for (const auto& s : j["scopes"]) {
      if (!s.is_string()) {
        return absl::InvalidArgumentError("credentials.scopes: must be an array of strings");
      }
      c.scopes.push_back(s.get<std::string>());
    }
  }
  if (c.login != "dev" && c.login != "oidc") {
    return absl::InvalidArgumentError(
        absl::StrCat("credentials.login: must be \"dev\" or \"oidc\", got \"", c.login, "\""));
  }
  return c;
}

bool NeedsRenewal(const Credentials& c, absl::Time now) {
  return c.access_token.empty() || now + kRenewBefore >= c.expire_time;
}

std::string ResumeStore::Key(const std::string& absolute_path, int64_t size, int64_t mtime_ns) {
  return absl::StrCat(absolute_path, "|", size, "|", mtime_ns);
}

absl::StatusOr<ResumeStore> ResumeStore::Load(const std::string& path) {
  ResumeStore store;
  store.path_ = path;
  auto text = ReadWholeFile(path);
  if (absl::IsNotFound(text.status())) return store;
  if (!text.ok()) return text.status();
  const json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  for (const auto& [k, v] : j.items()) {
    if (!v.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": value of \"", k, "\" not a string"));
    }
    store.uploads_[k] = v.get<std::string>();
  }
  return store;
}

std::optional<std::string> ResumeStore::Find(const std::string& key) const {
  auto it = uploads_.find(key);
  if (it == uploads_.end()) return std::nullopt;
  return it->second;
}

void ResumeStore::Put(const std::string& key, const std::string& upload_name) {
  uploads_[key] = upload_name;
}

void ResumeStore::Remove(const std::string& key) { uploads_.erase(key); }

absl::Status ResumeStore::Save() const {
  json j = json::object();
  for (const auto& [k, v] : uploads_) j[k] = v;
  return WritePrivateFile(path_, j.dump(2) + "\n");
}

std::map<std::string, std::string> ParseEndpointsFile(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    out[std::string(absl::StripAsciiWhitespace(line.substr(0, eq)))] =
        std::string(absl::StripAsciiWhitespace(line.substr(eq + 1)));
  }
  return out;
}

Endpoints ResolveEndpoints(const std::map<std::string, std::string>& flags, const EnvLookup& env,
                           const std::string& cwd,
                           const std::function<absl::StatusOr<std::string>(const std::string&)>&
                               read) {
  std::map<std::string, std::string> file;
  std::vector<std::string> candidates;
  if (auto home = env("PETTUBE_HOME")) {
    candidates.push_back(absl::StrCat(*home, "/run/endpoints"));
  } else {
    for (std::filesystem::path dir(cwd); !dir.empty(); dir = dir.parent_path()) {
      candidates.push_back((dir / ".pettube/run/endpoints").string());
      if (dir == dir.root_path()) break;
    }
  }
  for (const std::string& path : candidates) {
    auto text = read(path);
    if (text.ok()) {
      file = ParseEndpointsFile(*text);
      break;
    }
  }
  auto pick = [&](const std::string& flag, const std::string& var) -> std::string {
    if (auto it = flags.find(flag); it != flags.end() && !it->second.empty()) return it->second;
    if (auto v = env(var)) return *v;
    if (auto it = file.find(var); it != file.end()) return it->second;
    return "";
  };
  return Endpoints{pick("auth", "PETTUBE_AUTH"), pick("upload", "PETTUBE_UPLOAD"),
                   pick("catalog", "PETTUBE_CATALOG")};
}

absl::StatusOr<std::string> RequireAddress(const std::string& address, const std::string& flag,
                                           const std::string& what) {
  if (!address.empty()) return address;
  std::string var = absl::AsciiStrToUpper(flag);
  return absl::FailedPreconditionError(
      absl::StrCat("no address for ", what, ": pass --", flag, "=HOST:PORT, set PETTUBE_", var,
                   ", or start the local stack with scripts/up.sh"));
}

}  // namespace pettube::cli
