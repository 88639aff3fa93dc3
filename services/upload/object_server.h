#pragma once

// HTTP downloads of stored objects, for players and workers:
//
//   GET|HEAD /o/{token}/{bucket}/{key}   signed URL (libs/signed_url); the
//                                        token covers a key prefix and an
//                                        expiry, so HLS playlists' relative
//                                        references stay signed
//   GET|HEAD /objects/{bucket}/{key}     Authorization: Bearer <access token>
//                                        with objects.read (workers), or a
//                                        person's media.read token for their
//                                        own objects
//
// Single byte ranges (206, Content-Range; 416 when unsatisfiable),
// ETag (the SHA-256) with If-None-Match (304), Content-Type as stored,
// Accept-Ranges, Content-Length. 400 malformed path, 401 no or bad token,
// 403 signature refused or scope missing, 404 no such object, 405 other
// methods.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "libs/auth/credentials/authenticator.h"
#include "libs/http/http_server.h"
#include "libs/signed_url/url_signer.h"
#include "services/upload/uploads.h"

namespace pettube::upload {

// Thread-safe (civetweb calls it on many threads). Shares its parts.
class ObjectServer {
 public:
  // `signer` and `authenticator` may be null: the matching route then
  // answers 404 (signed URLs) or 401 (bearer).
  ObjectServer(Uploads* uploads, const signed_url::UrlSigner* signer,
               const auth::Authenticator* authenticator, UploadProbe* probe = nullptr)
      : uploads_(uploads), signer_(signer), authenticator_(authenticator), probe_(probe) {}

  // The "/o/*" and "/objects/*" routes.
  std::vector<std::pair<std::string, http::Handler>> Routes();

  http::Response ServeSigned(const http::Request& request) const;
  http::Response ServeBearer(const http::Request& request) const;

 private:
  // Counts `r` on the probe and returns it.
  http::Response Counted(http::Response r) const;
  // Answers for an object already authorized.
  http::Response ServeObject(const http::Request& request, absl::string_view bucket,
                             absl::string_view key) const;

  Uploads* const uploads_;
  const signed_url::UrlSigner* const signer_;
  const auth::Authenticator* const authenticator_;
  UploadProbe* const probe_;
};

// A parsed "Range" header against an object of `size` bytes.
struct ByteRange {
  int64_t first = 0;
  int64_t last = 0;  // inclusive
};
// nullopt: no usable Range (absent, not bytes, or several ranges: the whole
// object is served, as RFC 9110 allows). OUT_OF_RANGE when unsatisfiable.
absl::StatusOr<std::optional<ByteRange>> ParseRange(absl::string_view header, int64_t size);

}  // namespace pettube::upload
