#include "libs/signed_url/url_signer.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/auth/base64url.h"
#include "libs/fs/read_file.h"

namespace pettube::signed_url {
namespace {

constexpr absl::string_view kVersion = "v1";
constexpr size_t kMinSecretBytes = 32;
// Tokens end up in URL paths; no real prefix comes near this.
constexpr size_t kMaxTokenBytes = 2048;

bool ValidKeyId(absl::string_view id) {
  if (id.empty() || id.size() > 32) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<KeyRing> KeyRing::Parse(absl::string_view text) {
  std::vector<Key> keys;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    const std::string where = absl::StrCat("line ", line_number);
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": want \"KEY_ID BASE64_SECRET\", got ", fields.size(), " fields"));
    }
    if (!ValidKeyId(fields[0])) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": key id must be 1-32 of [A-Za-z0-9_-]"));
    }
    Key key{std::string(fields[0]), ""};
    if (!absl::Base64Unescape(fields[1], &key.secret)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": secret is not base64"));
    }
    if (key.secret.size() < kMinSecretBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": secret must be at least ", kMinSecretBytes, " bytes, got ", key.secret.size()));
    }
    for (const Key& k : keys) {
      if (k.id == key.id) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": key id \"", key.id, "\" repeated"));
      }
    }
    keys.push_back(std::move(key));
  }
  if (keys.empty()) return absl::InvalidArgumentError("no signing key");
  return KeyRing(std::move(keys));
}

absl::StatusOr<KeyRing> KeyRing::FromFile(absl::string_view flag, const std::string& path) {
  auto text = fs::ReadFile(flag, path);
  if (!text.ok()) return text.status();
  auto ring = Parse(*text);
  if (!ring.ok()) {
    return absl::Status(ring.status().code(),
                        absl::StrCat(flag, " ", path, ": ", ring.status().message()));
  }
  return ring;
}

std::string KeyRing::GenerateText(absl::string_view key_id) {
  unsigned char secret[kMinSecretBytes];
  // RAND_bytes fails only if the OS has no entropy; an empty ring then fails
  // Parse loudly instead of signing with a predictable key.
  if (RAND_bytes(secret, sizeof(secret)) != 1) return "";
  return absl::StrCat(
      key_id, " ",
      absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(secret), sizeof(secret))),
      "\n");
}

const KeyRing::Key* KeyRing::Find(absl::string_view id) const {
  for (const Key& k : keys_) {
    if (k.id == id) return &k;
  }
  return nullptr;
}

UrlSigner::UrlSigner(KeyRing keys) : keys_(std::move(keys)) {
  for (const KeyRing::Key& key : keys_.keys()) macs_.emplace(key.id, HmacSha256(key.secret));
}

std::string UrlSigner::Mac(const KeyRing::Key& key, absl::string_view expiry,
                           absl::string_view prefix) const {
  const std::string message = absl::StrCat(kVersion, "\n", key.id, "\n", expiry, "\n", prefix);
  return macs_.at(key.id).Mac(message);
}

std::string UrlSigner::Sign(absl::string_view prefix, absl::Time expire) const {
  const KeyRing::Key& key = keys_.signing_key();
  const std::string expiry = absl::StrCat(absl::ToUnixSeconds(expire));
  return absl::StrCat(kVersion, ".", key.id, ".", expiry, ".", auth::Base64UrlEncode(prefix), ".",
                      auth::Base64UrlEncode(Mac(key, expiry, prefix)));
}

std::string UrlSigner::SignedPath(absl::string_view object_path, absl::string_view prefix,
                                  absl::Time expire) const {
  return absl::StrCat("/o/", Sign(prefix, expire), "/", object_path);
}

absl::Status UrlSigner::Verify(absl::string_view token, absl::string_view object_path,
                               absl::Time now) const {
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError("signed URL token: too long");
  }
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 5 || parts[0] != kVersion) {
    return absl::InvalidArgumentError("signed URL token: not a v1 token");
  }
  int64_t expiry = 0;
  if (!absl::SimpleAtoi(parts[2], &expiry) || expiry < 0) {
    return absl::InvalidArgumentError("signed URL token: bad expiry");
  }
  auto prefix = auth::Base64UrlDecode(parts[3]);
  auto mac = auth::Base64UrlDecode(parts[4]);
  if (!prefix.ok() || !mac.ok()) {
    return absl::InvalidArgumentError("signed URL token: bad base64url");
  }
  const KeyRing::Key* key = keys_.Find(parts[1]);
  if (key == nullptr) return absl::PermissionDeniedError("signed URL: unknown key id");
  const std::string want = Mac(*key, parts[2], *prefix);
  if (mac->size() != want.size() || CRYPTO_memcmp(mac->data(), want.data(), want.size()) != 0) {
    return absl::PermissionDeniedError("signed URL: signature does not match");
  }
  if (now >= absl::FromUnixSeconds(expiry)) {
    return absl::PermissionDeniedError("signed URL: expired");
  }
  const bool covered = absl::EndsWith(*prefix, "/") ? absl::StartsWith(object_path, *prefix)
                                                    : object_path == *prefix;
  if (!covered) return absl::PermissionDeniedError("signed URL: not valid for this object");
  return absl::OkStatus();
}

}  // namespace pettube::signed_url
