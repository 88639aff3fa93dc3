#include "services/upload/object_server.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/time/proto_time.h"
#include "services/upload/object_keys.h"

namespace pettube::upload {
namespace {

constexpr size_t kStreamChunkBytes = size_t{1} << 20;

http::Response Text(int status, absl::string_view message) {
  http::Response r;
  r.status = status;
  r.body = absl::StrCat(message, "\n");
  return r;
}

// Splits "{bucket}/{key}" and validates both.
absl::Status SplitObjectPath(absl::string_view path, absl::string_view* bucket,
                             absl::string_view* key) {
  const size_t slash = path.find('/');
  if (slash == absl::string_view::npos) return absl::InvalidArgumentError("want /{bucket}/{key}");
  *bucket = path.substr(0, slash);
  *key = path.substr(slash + 1);
  if (auto s = ValidateBucket("bucket", *bucket); !s.ok()) return s;
  return ValidateKey("key", *key);
}

}  // namespace

absl::StatusOr<std::optional<ByteRange>> ParseRange(absl::string_view header, int64_t size) {
  header = absl::StripAsciiWhitespace(header);
  if (!absl::ConsumePrefix(&header, "bytes=")) return std::optional<ByteRange>();
  if (absl::StrContains(header, ',')) return std::optional<ByteRange>();
  const size_t dash = header.find('-');
  if (dash == absl::string_view::npos) return std::optional<ByteRange>();
  const absl::string_view a = absl::StripAsciiWhitespace(header.substr(0, dash));
  const absl::string_view b = absl::StripAsciiWhitespace(header.substr(dash + 1));
  int64_t first = 0, last = 0;
  if (a.empty()) {
    // Suffix: the last N bytes.
    int64_t n = 0;
    if (!absl::SimpleAtoi(b, &n) || n < 0) return std::optional<ByteRange>();
    if (n == 0 || size == 0) return absl::OutOfRangeError("empty suffix range");
    first = std::max<int64_t>(0, size - n);
    last = size - 1;
  } else {
    if (!absl::SimpleAtoi(a, &first) || first < 0) return std::optional<ByteRange>();
    if (b.empty()) {
      last = size - 1;
    } else if (!absl::SimpleAtoi(b, &last) || last < first) {
      return std::optional<ByteRange>();
    }
    if (first >= size) return absl::OutOfRangeError("range starts past the end");
    last = std::min(last, size - 1);
  }
  return std::optional<ByteRange>(ByteRange{first, last});
}

std::vector<std::pair<std::string, http::Handler>> ObjectServer::Routes() {
  return {
      {"/o/*", [this](const http::Request& r) { return Counted(ServeSigned(r)); }},
      {"/objects/*", [this](const http::Request& r) { return Counted(ServeBearer(r)); }},
  };
}

http::Response ObjectServer::Counted(http::Response r) const {
  if (probe_ != nullptr) {
    probe_->Served(r.status, r.stream_body ? r.stream_length : static_cast<int64_t>(r.body.size()));
  }
  return r;
}

http::Response ObjectServer::ServeSigned(const http::Request& request) const {
  if (signer_ == nullptr) return Text(404, "signed URLs are not enabled");
  absl::string_view path = request.path;
  absl::ConsumePrefix(&path, "/o/");
  const size_t slash = path.find('/');
  if (slash == absl::string_view::npos) return Text(400, "want /o/{token}/{bucket}/{key}");
  const absl::string_view token = path.substr(0, slash);
  const absl::string_view object_path = path.substr(slash + 1);
  absl::string_view bucket, key;
  if (auto s = SplitObjectPath(object_path, &bucket, &key); !s.ok()) {
    return Text(400, s.message());
  }
  if (auto s = signer_->Verify(token, object_path, absl::Now()); !s.ok()) {
    return Text(403, s.message());
  }
  return ServeObject(request, bucket, key);
}

http::Response ObjectServer::ServeBearer(const http::Request& request) const {
  absl::string_view path = request.path;
  absl::ConsumePrefix(&path, "/objects/");
  absl::string_view bucket, key;
  if (auto s = SplitObjectPath(path, &bucket, &key); !s.ok()) return Text(400, s.message());
  http::Response unauthorized = Text(401, "authorization: want \"Bearer <access token>\"");
  unauthorized.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"pettube\"");
  const auto header = request.headers.find("authorization");
  if (authenticator_ == nullptr || header == request.headers.end()) return unauthorized;
  absl::string_view value = header->second;
  if (!absl::ConsumePrefix(&value, "Bearer ") && !absl::ConsumePrefix(&value, "bearer ")) {
    return unauthorized;
  }
  auto caller = authenticator_->AuthenticateToken(absl::StripAsciiWhitespace(value));
  if (!caller.ok()) {
    if (absl::IsUnavailable(caller.status())) return Text(503, caller.status().message());
    unauthorized.body = absl::StrCat(caller.status().message(), "\n");
    return unauthorized;
  }
  const bool owner = caller->HasScope("media.read") &&
                     absl::StartsWith(key, absl::StrCat(caller->identity, "/"));
  if (!caller->HasScope(kObjectsReadScope) && !owner) {
    return Text(403, "reading objects needs the objects.read scope");
  }
  return ServeObject(request, bucket, key);
}

http::Response ObjectServer::ServeObject(const http::Request& request, absl::string_view bucket,
                                         absl::string_view key) const {
  if (request.method != "GET" && request.method != "HEAD") {
    http::Response r = Text(405, "only GET and HEAD");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  auto record = uploads_->FindObject(bucket, key);
  if (!record.ok()) {
    return absl::IsNotFound(record.status()) ? Text(404, "no such object")
                                             : Text(500, record.status().message());
  }
  auto opened = uploads_->blobs()->Open(bucket, key);
  if (!opened.ok()) {
    return absl::IsNotFound(opened.status()) ? Text(404, "no such object")
                                             : Text(500, opened.status().message());
  }
  std::shared_ptr<BlobReader> reader = *std::move(opened);
  const v1::ObjectInfo& info = record->info();
  const int64_t size = reader->size();
  const std::string etag = absl::StrCat("\"", info.sha256(), "\"");

  http::Response r;
  r.content_type = info.content_type().empty() ? "application/octet-stream" : info.content_type();
  r.headers.emplace_back("Accept-Ranges", "bytes");
  r.headers.emplace_back("ETag", etag);
  r.headers.emplace_back(
      "Last-Modified",
      absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", time::FromProto(info.create_time()),
                       absl::UTCTimeZone()));
  // Objects never change in place (a new rendition is a new commit), but
  // URLs are personal: shared caches must not keep them.
  r.headers.emplace_back("Cache-Control", "private, max-age=3600");

  if (auto inm = request.headers.find("if-none-match"); inm != request.headers.end()) {
    for (absl::string_view tag : absl::StrSplit(inm->second, ',')) {
      tag = absl::StripAsciiWhitespace(tag);
      absl::ConsumePrefix(&tag, "W/");
      if (tag == etag || tag == "*") {
        r.status = 304;
        r.body.clear();
        return r;
      }
    }
  }
  int64_t first = 0, length = size;
  if (auto range = request.headers.find("range"); range != request.headers.end()) {
    auto parsed = ParseRange(range->second, size);
    if (!parsed.ok()) {
      http::Response bad = Text(416, "range not satisfiable");
      bad.headers.emplace_back("Content-Range", absl::StrCat("bytes */", size));
      bad.headers.emplace_back("Accept-Ranges", "bytes");
      return bad;
    }
    if (parsed->has_value()) {
      first = (*parsed)->first;
      length = (*parsed)->last - first + 1;
      r.status = 206;
      r.headers.emplace_back("Content-Range",
                             absl::StrCat("bytes ", first, "-", (*parsed)->last, "/", size));
    }
  }
  r.stream_length = length;
  r.stream_body = [reader, first, length](const std::function<bool(absl::string_view)>& sink) {
    std::string buffer;
    int64_t offset = first;
    const int64_t end = first + length;
    while (offset < end) {
      const size_t want = static_cast<size_t>(std::min<int64_t>(kStreamChunkBytes, end - offset));
      if (!reader->ReadAt(offset, want, &buffer).ok() || buffer.empty()) return;
      if (!sink(buffer)) return;
      offset += static_cast<int64_t>(buffer.size());
    }
  };
  return r;
}

}  // namespace pettube::upload
