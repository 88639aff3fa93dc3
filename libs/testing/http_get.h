#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pettube::testing {

// A response to a plain HTTP/1.1 GET.
struct HttpResponse {
  int status = 0;
  std::string headers;  // raw header block
  std::string body;
};

// GETs http://<address><path> over a fresh loopback connection (a blocking
// socket with a 10 s timeout); reads until the server closes.
absl::StatusOr<HttpResponse> HttpGet(const std::string& address, const std::string& path);

// The same with a method ("GET", "HEAD") and extra header lines, each
// "Name: value" without CRLF.
absl::StatusOr<HttpResponse> HttpFetch(const std::string& address, const std::string& method,
                                       const std::string& path,
                                       const std::vector<std::string>& headers);

}  // namespace pettube::testing
