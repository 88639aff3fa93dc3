#include "libs/http/http_server.h"

#include <civetweb.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pettube::http {
namespace {

// Few threads: these servers answer scrapes and probes, not user traffic.
// With keep-alive off a thread is busy only for one request.
// A client that connects and sends nothing holds a thread this long.
constexpr char kRequestTimeoutMs[] = "10000";

// Where OnLogMessage puts civetweb's messages while Start runs mg_start2 on
// this thread; they explain a failed start ("cannot bind to ..."). Null on
// civetweb's own threads, whose messages are dropped.
thread_local std::vector<std::string>* start_log = nullptr;

struct HostPort {
  std::string host;
  int port = 0;
};

absl::StatusOr<HostPort> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(listen, ": want host:port"));
  }
  HostPort result;
  result.host = listen.substr(0, colon);
  const absl::string_view port = absl::string_view(listen).substr(colon + 1);
  if (result.host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(listen, ": host must not be empty"));
  }
  if (result.host.find_first_of(":[]") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(listen, ": IPv6 addresses are not supported"));
  }
  for (const char c : result.host) {
    // Also keeps civetweb's list syntax ("a:1,b:2", "8080s") out of
    // listening_ports.
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat(listen, ": host must be an IPv4 address or a name"));
    }
  }
  const bool digits_only = !port.empty() && port.size() <= 5 &&
                           std::all_of(port.begin(), port.end(), [](char c) {
                             return absl::ascii_isdigit(c);
                           });
  if (!digits_only || !absl::SimpleAtoi(port, &result.port) ||
      result.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(listen, ": port must be a number in 0..65535"));
  }
  return result;
}

Request ToRequest(const mg_request_info& info) {
  Request request;
  if (info.request_method != nullptr) request.method = info.request_method;
  // local_uri is null when the request names another host in an absolute
  // URI; the empty path then matches no route.
  if (info.local_uri != nullptr) request.path = info.local_uri;
  if (info.query_string != nullptr) request.query = info.query_string;
  for (int i = 0; i < info.num_headers; ++i) {
    const mg_header& header = info.http_headers[i];
    if (header.name == nullptr || header.value == nullptr) continue;
    std::string& value = request.headers[absl::AsciiStrToLower(header.name)];
    if (!value.empty()) value += ", ";
    value += header.value;
  }
  request.remote_addr = absl::StrCat(info.remote_addr, ":", info.remote_port);
  return request;
}

Response TextResponse(int status, std::string body) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

bool HasLineBreak(absl::string_view text) {
  return text.find_first_of("\r\n") != absl::string_view::npos;
}

// False for a response that would make a malformed or injected HTTP message.
bool IsSendable(const Response& response) {
  if (response.status < 100 || response.status > 599) return false;
  if (HasLineBreak(response.content_type)) return false;
  for (const auto& [name, value] : response.headers) {
    if (name.empty() || HasLineBreak(name) || HasLineBreak(value)) return false;
  }
  return true;
}

// Writes the status line, headers and (unless `head`) body in one write, so
// a small response leaves in one segment instead of waiting out Nagle and
// the client's delayed ACK. Built by hand rather than with
// mg_response_header_*: Debian's civetweb formats their Date header with
// gmtime(), whose static buffer races between worker threads (TSan).
void Write(mg_connection* conn, const Response& response, bool head) {
  std::string out = absl::StrCat(
      "HTTP/1.1 ", response.status, " ",
      mg_get_response_code_text(conn, response.status), "\r\n", "Date: ",
      absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", absl::Now(),
                       absl::UTCTimeZone()),
      "\r\n", "Content-Type: ", response.content_type, "\r\n",
      "Content-Length: ",
      response.stream_body ? static_cast<uint64_t>(response.stream_length)
                           : static_cast<uint64_t>(response.body.size()),
      "\r\n",
      // Keep-alive is off (see Start): say so, so clients do not wait.
      "Connection: close\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  out += "\r\n";
  if (!head && !response.stream_body) out += response.body;
  // A failed write means the client went away; nothing left to tell it.
  if (mg_write(conn, out.data(), out.size()) <= 0) return;
  if (head || !response.stream_body) return;
  response.stream_body([conn](absl::string_view data) {
    return data.empty() || mg_write(conn, data.data(), data.size()) > 0;
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen,
    std::vector<std::pair<std::string, Handler>> routes, ServerOptions server_options) {
  absl::StatusOr<HostPort> host_port = ParseListen(listen);
  if (!host_port.ok()) return host_port.status();
  if (server_options.num_threads < 1 || server_options.num_threads > 1024) {
    return absl::InvalidArgumentError("num_threads: must be 1 to 1024");
  }

  absl::flat_hash_map<std::string, Handler> route_map;
  std::vector<std::pair<std::string, Handler>> prefix_routes;
  for (auto& [path, handler] : routes) {
    if (path.empty() || path[0] != '/' || !handler) {
      return absl::InvalidArgumentError(absl::StrCat(
          "route \"", path, "\": path must start with / and have a handler"));
    }
    if (absl::EndsWith(path, "/*")) {
      for (const auto& [p, h] : prefix_routes) {
        if (p == path.substr(0, path.size() - 1)) {
          return absl::InvalidArgumentError(
              absl::StrCat("route \"", path, "\": registered twice"));
        }
      }
      prefix_routes.emplace_back(path.substr(0, path.size() - 1), std::move(handler));
      continue;
    }
    if (!route_map.emplace(path, std::move(handler)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("route \"", path, "\": registered twice"));
    }
  }

  static absl::once_flag init_once;
  // Not thread-safe by civetweb's own account, hence the once.
  absl::call_once(init_once, [] { mg_init_library(0); });

  std::sort(prefix_routes.begin(), prefix_routes.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  std::unique_ptr<HttpServer> server = absl::WrapUnique(
      new HttpServer(host_port->host, std::move(route_map), std::move(prefix_routes)));
  const std::string num_threads = absl::StrCat(server_options.num_threads);

  const std::string ports = absl::StrCat(host_port->host, ":", host_port->port);
  // clang-format off
  const char* options[] = {
      "listening_ports",    ports.c_str(),
      "num_threads",        num_threads.c_str(),
      // civetweb holds a worker thread per open connection; keep-alive would
      // let a few idle clients starve the rest.
      "enable_keep_alive",  "no",
      "request_timeout_ms", kRequestTimeoutMs,
      nullptr,
  };
  // clang-format on
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.begin_request = &HttpServer::OnBeginRequest;
  callbacks.log_message = &HttpServer::OnLogMessage;
  mg_init_data init;
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = options;
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error;
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);

  std::vector<std::string> log;
  start_log = &log;
  server->context_ = mg_start2(&init, &error);
  start_log = nullptr;

  if (server->context_ == nullptr) {
    // civetweb's first message names the cause ("cannot bind to ...");
    // error_text only says "Failed to setup server ports".
    std::string cause = "civetweb failed to start";
    if (!log.empty()) {
      cause = log.front();
    } else if (error_text[0] != '\0') {
      cause = error_text;
    }
    return absl::UnavailableError(absl::StrCat(listen, ": ", cause));
  }
  mg_server_port port;
  if (mg_get_server_ports(server->context_, 1, &port) != 1) {
    return absl::UnavailableError(
        absl::StrCat(listen, ": civetweb reports no listening port"));
  }
  server->port_ = port.port;
  return server;
}

HttpServer::HttpServer(std::string host,
                       absl::flat_hash_map<std::string, Handler> routes,
                       std::vector<std::pair<std::string, Handler>> prefix_routes)
    : host_(std::move(host)),
      routes_(std::move(routes)),
      prefix_routes_(std::move(prefix_routes)) {}

HttpServer::~HttpServer() {
  if (context_ != nullptr) mg_stop(context_);
}

std::string HttpServer::address() const {
  return absl::StrCat(host_, ":", port_);
}

int HttpServer::OnBeginRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const auto* server = static_cast<const HttpServer*>(info->user_data);
  return server->Serve(conn);
}

int HttpServer::OnLogMessage(const mg_connection* /*conn*/,
                             const char* message) {
  if (start_log != nullptr && message != nullptr) {
    start_log->push_back(message);
  }
  return 1;  // Handled: civetweb prints nothing.
}

int HttpServer::Serve(mg_connection* conn) const {
  const Request request = ToRequest(*mg_get_request_info(conn));
  Response response;
  const Handler* handler = nullptr;
  if (const auto route = routes_.find(request.path); route != routes_.end()) {
    handler = &route->second;
  } else {
    for (const auto& [prefix, h] : prefix_routes_) {
      if (absl::StartsWith(request.path, prefix)) {
        handler = &h;
        break;
      }
    }
  }
  if (handler == nullptr) {
    response = TextResponse(404, "not found\n");
  } else {
    response = (*handler)(request);
    if (!IsSendable(response)) {
      // The handler's bug, not the client's: say so without echoing it.
      response = TextResponse(500, "internal error: invalid response\n");
    }
  }
  Write(conn, response, /*head=*/request.method == "HEAD");
  return response.status;
}

}  // namespace pettube::http
