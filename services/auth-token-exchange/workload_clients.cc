#include "services/auth-token-exchange/workload_clients.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace pettube::auth {
namespace {

std::string Sha256(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), len);
}

}  // namespace

std::string WorkloadClients::Sha256Hex(absl::string_view data) {
  return absl::BytesToHexString(Sha256(data));
}

absl::StatusOr<WorkloadClients> WorkloadClients::Parse(absl::string_view text) {
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) {
    return absl::InvalidArgumentError("workload clients: must be a JSON array of objects");
  }
  WorkloadClients out;
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& e = doc[i];
    const std::string where = absl::StrCat("workload clients[", i, "]");
    if (!e.is_object() || !e.contains("client_id") || !e["client_id"].is_string() ||
        e["client_id"].get<std::string>().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".client_id: must be a non-empty string"));
    }
    Client c;
    if (e.contains("secret_sha256") && e["secret_sha256"].is_string()) {
      const std::string hex = e["secret_sha256"].get<std::string>();
      if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".secret_sha256: must be 64 lower-case hex digits"));
      }
      c.secret_digest = absl::HexStringToBytes(hex);
    } else if (e.contains("secret_file") && e["secret_file"].is_string()) {
      std::ifstream in(e["secret_file"].get<std::string>(), std::ios::binary);
      if (!in) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".secret_file: cannot read ", e["secret_file"].get<std::string>()));
      }
      std::stringstream ss;
      ss << in.rdbuf();
      std::string secret = ss.str();
      // Files made with `echo` end with a newline that is not the secret.
      absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(secret);
      if (trimmed.size() < 16) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".secret_file: secret shorter than 16 bytes"));
      }
      c.secret_digest = Sha256(trimmed);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": needs secret_sha256 or secret_file"));
    }
    if (e.contains("scopes")) {
      if (!e["scopes"].is_array()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".scopes: must be an array of strings"));
      }
      for (const auto& s : e["scopes"]) {
        if (!s.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ".scopes: must be an array of strings"));
        }
        c.scopes.push_back(s.get<std::string>());
      }
    }
    out.clients_[e["client_id"].get<std::string>()] = std::move(c);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> WorkloadClients::Authenticate(
    const std::string& client_id, const std::string& secret,
    const std::vector<std::string>& requested) const {
  const std::string digest = Sha256(secret);
  auto it = clients_.find(client_id);
  // Compare even for unknown clients so timing says nothing about ids.
  static const std::string kNoMatch(32, '\0');
  const std::string& expected = it == clients_.end() ? kNoMatch : it->second.secret_digest;
  const bool match = CRYPTO_memcmp(digest.data(), expected.data(), 32) == 0;
  if (it == clients_.end() || !match) {
    return absl::UnauthenticatedError("client_id or client_secret is wrong");
  }
  if (requested.empty()) return it->second.scopes;
  for (const std::string& scope : requested) {
    if (std::find(it->second.scopes.begin(), it->second.scopes.end(), scope) ==
        it->second.scopes.end()) {
      return absl::PermissionDeniedError(
          absl::StrCat("scope \"", scope, "\" is not granted to client ", client_id));
    }
  }
  return requested;
}

}  // namespace pettube::auth
