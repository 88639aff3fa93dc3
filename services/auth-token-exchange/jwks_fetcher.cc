#include "services/auth-token-exchange/jwks_fetcher.h"

#include <curl/curl.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pettube::auth {
namespace {

struct Body {
  std::string data;
  size_t max;
  bool too_big = false;
};

size_t Append(char* ptr, size_t size, size_t n, void* user) {
  auto* body = static_cast<Body*>(user);
  if (body->data.size() + size * n > body->max) {
    body->too_big = true;
    return 0;  // aborts the transfer
  }
  body->data.append(ptr, size * n);
  return size * n;
}

bool IsLoopbackHttp(absl::string_view uri) {
  return absl::StartsWith(uri, "http://127.") || absl::StartsWith(uri, "http://localhost:") ||
         absl::StartsWith(uri, "http://[::1]");
}

}  // namespace

absl::StatusOr<std::string> CurlJwksFetcher::Fetch(const std::string& uri) {
  if (!absl::StartsWith(uri, "https://") && !absl::StartsWith(uri, "http://")) {
    const std::string path = absl::StartsWith(uri, "file://") ? uri.substr(7) : uri;
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::UnavailableError(absl::StrCat("jwks ", path, ": cannot read"));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  if (absl::StartsWith(uri, "http://") && !IsLoopbackHttp(uri)) {
    return absl::InvalidArgumentError(
        absl::StrCat("jwks ", uri, ": keys are fetched over https (http only on loopback)"));
  }
  // curl_global_init is not thread-safe; do it once.
  static const bool initialized = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == 0; }();
  if (!initialized) return absl::InternalError("libcurl failed to initialize");
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("libcurl: no handle");
  Body body{"", max_bytes_};
  curl_easy_setopt(curl, CURLOPT_URL, uri.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(timeout_)));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (body.too_big) {
    return absl::UnavailableError(
        absl::StrCat("jwks ", uri, ": larger than ", max_bytes_, " bytes"));
  }
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("jwks ", uri, ": ", curl_easy_strerror(rc)));
  }
  if (status != 200) return absl::UnavailableError(absl::StrCat("jwks ", uri, ": HTTP ", status));
  return body.data;
}

}  // namespace pettube::auth
