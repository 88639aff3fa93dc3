#pragma once

// Where the pettube CLI keeps its state and finds the servers:
//   - the config directory: $XDG_CONFIG_HOME/pettube, else ~/.config/pettube
//     (mode 0700; files in it 0600);
//   - credentials.json: the signed-in person's access token and what renews it;
//   - uploads.json: unfinished uploads by file (path + size + mtime), so
//     running `pettube upload FILE` again resumes;
//   - server addresses: a flag (--auth, --upload, --catalog), else the
//     environment (PETTUBE_AUTH, PETTUBE_UPLOAD, PETTUBE_CATALOG), else the
//     local stack's endpoints file ($PETTUBE_HOME/run/endpoints, or
//     .pettube/run/endpoints in the current directory or a parent), which
//     scripts/up.sh writes as the same KEY=VALUE lines.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pettube::cli {

// Reads an environment variable; nullopt when unset or empty.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup ProcessEnv();

// The config directory (not created). FAILED_PRECONDITION when neither
// XDG_CONFIG_HOME nor HOME is set.
absl::StatusOr<std::string> ConfigDir(const EnvLookup& env);

// Writes `contents` to `path` atomically (temporary file + rename) with mode
// 0600, creating the parent directory with mode 0700 if needed.
absl::Status WritePrivateFile(const std::string& path, const std::string& contents);

// The whole file; NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// A signed-in person's credentials.
struct Credentials {
  std::string auth_server;   // where they were issued (renewal goes there)
  std::string login;         // "dev" (renewed by minting again) or "oidc"
  std::string user;          // dev identity provider user name
  std::string id_token;      // oidc: the ID token, re-exchanged while valid
  absl::Time id_token_expire_time = absl::InfinitePast();
  std::string access_token;
  absl::Time expire_time = absl::InfinitePast();
  std::string identity;      // "identities/{id}"
  std::vector<std::string> scopes;
};

std::string SerializeCredentials(const Credentials& credentials);
// INVALID_ARGUMENT naming the field when the file is not what we write.
absl::StatusOr<Credentials> ParseCredentials(const std::string& json);

// Renew when less than this is left, so a command never starts with a token
// that expires mid-way.
inline constexpr absl::Duration kRenewBefore = absl::Minutes(5);
bool NeedsRenewal(const Credentials& credentials, absl::Time now);

// Unfinished uploads, keyed by file identity. Not thread-safe.
class ResumeStore {
 public:
  // Key for a file: its absolute path, size and modification time; a file
  // changed since the interrupted run gets a new key (and a new upload).
  static std::string Key(const std::string& absolute_path, int64_t size, int64_t mtime_ns);

  // Loads `path` (an absent file is an empty store). INVALID_ARGUMENT if the
  // file is not a JSON object of strings.
  static absl::StatusOr<ResumeStore> Load(const std::string& path);

  std::optional<std::string> Find(const std::string& key) const;
  void Put(const std::string& key, const std::string& upload_name);
  void Remove(const std::string& key);
  absl::Status Save() const;

 private:
  std::string path_;
  std::map<std::string, std::string> uploads_;
};

// Server addresses, "HOST:PORT".
struct Endpoints {
  std::string auth;
  std::string upload;
  std::string catalog;
};

// KEY=VALUE lines ('#' comments and blank lines ignored).
std::map<std::string, std::string> ParseEndpointsFile(const std::string& text);

// Resolves each address from the flags, the environment, then the local
// stack's endpoints file. Missing addresses stay empty (see RequireAddress).
// `read` reads a file (NOT_FOUND when absent); `cwd` is where the search for
// .pettube/run/endpoints starts.
Endpoints ResolveEndpoints(const std::map<std::string, std::string>& flags, const EnvLookup& env,
                           const std::string& cwd,
                           const std::function<absl::StatusOr<std::string>(const std::string&)>&
                               read);

// The address, or FAILED_PRECONDITION saying how to give it.
absl::StatusOr<std::string> RequireAddress(const std::string& address, const std::string& flag,
                                           const std::string& what);

}  // namespace pettube::cli
