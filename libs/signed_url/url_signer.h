#pragma once

// Signed, expiring URLs for objects of the upload service's store.
//
// A token grants GET/HEAD on every object whose path ("{bucket}/{key}")
// starts with a prefix, until an expiry. It sits in the URL path, so the
// relative references inside an HLS playlist stay signed without cookies:
//
//   /o/{token}/renditions/u1/m1/hls/master.m3u8   (prefix "renditions/u1/m1/")
//   /o/{token}/renditions/u1/m1/hls/720p.m3u8      same token, still valid
//
// Token: "v1.{key_id}.{expiry unix seconds}.{base64url(prefix)}.{base64url(mac)}",
// mac = HMAC-SHA-256(secret of key_id, "v1\n{key_id}\n{expiry}\n{prefix}").
// The key id lets keys rotate: the first key of the ring signs, every key
// verifies, so a new key is added first, made the signer later, and the
// old one removed once the URLs it signed have expired.
//
//   UrlSigner signer(*KeyRing::FromFile(path));
//   std::string url = base + signer.SignedPath("renditions/u1/m1/720p.mp4",
//                                              "renditions/u1/m1/", expire);
//   absl::Status ok = signer.Verify(token, "renditions/u1/m1/720p.mp4", now);

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/signed_url/hmac_sha256.h"

namespace pettube::signed_url {

// HMAC keys by id; the first one signs. Immutable, so thread-safe.
class KeyRing {
 public:
  struct Key {
    std::string id;      // [A-Za-z0-9_-]{1,32}
    std::string secret;  // at least 32 bytes
  };

  // Parses lines "KEY_ID BASE64_SECRET" ('#' starts a comment, blank lines
  // skipped), e.g. a mounted Kubernetes Secret. INVALID_ARGUMENT naming the
  // line for a malformed line, a repeated id, a short secret, or no key.
  static absl::StatusOr<KeyRing> Parse(absl::string_view text);
  // Reads and parses `path`; `flag` names the setting in errors.
  static absl::StatusOr<KeyRing> FromFile(absl::string_view flag, const std::string& path);
  // The text of a ring with one fresh random key (for set-up scripts/tests).
  static std::string GenerateText(absl::string_view key_id);

  const Key& signing_key() const { return keys_.front(); }
  const std::vector<Key>& keys() const { return keys_; }
  // nullptr when unknown.
  const Key* Find(absl::string_view id) const;

 private:
  explicit KeyRing(std::vector<Key> keys) : keys_(std::move(keys)) {}
  std::vector<Key> keys_;
};

// Mints and checks tokens. Immutable, so thread-safe.
class UrlSigner {
 public:
  explicit UrlSigner(KeyRing keys);

  // A token for every object path starting with `prefix` until `expire`.
  // A prefix that is a "directory" ends with '/'; otherwise it matches only
  // the one path equal to it (so "renditions/u1/m1" never grants "m10").
  std::string Sign(absl::string_view prefix, absl::Time expire) const;

  // "/o/{token}/{object_path}".
  std::string SignedPath(absl::string_view object_path, absl::string_view prefix,
                         absl::Time expire) const;

  // OK if `token` is genuine, unexpired at `now` and covers `object_path`.
  // INVALID_ARGUMENT for a token that does not parse, PERMISSION_DENIED for
  // a forged or tampered one, an unknown key id, an expired one, or one for
  // another prefix; the message says which.
  absl::Status Verify(absl::string_view token, absl::string_view object_path, absl::Time now) const;

 private:
  std::string Mac(const KeyRing::Key& key, absl::string_view expiry,
                  absl::string_view prefix) const;

  const KeyRing keys_;
  // Each key's HMAC, keyed once, by key id.
  absl::flat_hash_map<std::string, HmacSha256> macs_;
};

}  // namespace pettube::signed_url
