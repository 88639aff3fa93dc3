#pragma once

#include <string>

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

}  // namespace pettube::testing
