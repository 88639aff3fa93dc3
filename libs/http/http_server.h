#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct mg_connection;
struct mg_context;

namespace pettube::http {

// One HTTP request as a handler sees it. The body is not read: routes so far
// (/metrics, probes) are GETs.
struct Request {
  std::string method;  // "GET", "HEAD", ...
  // URL-decoded and normalised by civetweb ("/a/../b" -> "/b"), no query.
  std::string path;
  std::string query;  // After '?', still URL-encoded; empty if none.
  // Lower-case names. A header sent more than once has its values joined
  // with ", " (RFC 9110, 5.3).
  std::map<std::string, std::string> headers;
  std::string remote_addr;  // "ip:port" of the peer.
};

// A handler's answer. The body is buffered in memory: fine for /metrics and
// probes. Media streaming with Range requests will add a second body source
// (a file plus byte range) beside `body`, chosen by the server when writing,
// so handlers that set `body` stay as they are.
struct Response {
  int status = 200;  // 100..599; anything else is answered with a 500.
  std::string content_type = "text/plain; charset=utf-8";
  // Extra headers. Content-Type and Content-Length are set by the server.
  // A name or value containing CR or LF (header injection) turns the
  // response into a 500.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A large body (a media object) streamed instead of `body`: when
  // `stream_body` is set, Content-Length is `stream_length` and, unless the
  // request is a HEAD, the server calls `stream_body` once after writing the
  // headers, with a sink that sends bytes and returns false once the client
  // has gone away. It must write exactly `stream_length` bytes.
  int64_t stream_length = 0;
  std::function<void(const std::function<bool(absl::string_view)>& sink)> stream_body;
};

// Settings of one server.
struct ServerOptions {
  // Worker threads: requests served at once (one per open connection).
  int num_threads = 4;
};

// Called on a civetweb worker thread, possibly concurrently with itself:
// must be thread-safe. Must not block for long; each call holds one of the
// server's few threads.
using Handler = std::function<Response(const Request&)>;

// A small embedded HTTP/1.1 server on civetweb (the server prometheus-cpp
// uses) for /metrics and similar endpoints. Routes map exact paths to
// handlers ("/metrics" does not serve "/metrics/x"); any other path gets a
// 404, and HEAD requests get a handler's headers without its body.
// Keep-alive is off: civetweb holds a worker thread per open connection.
//
// civetweb's own log lines are dropped, not printed: stdout carries only a
// service's "ready ..." line, and start-up errors come back as a Status.
//
// Thread-safe: address() and port() may be called from any thread. The
// destructor stops the server (mg_stop, ~2 s: civetweb's accept loop polls
// with a 2 s timeout) and returns after in-flight handlers finish.
class HttpServer {
 public:
  // Starts serving `routes` (exact path -> handler) on `listen`, "host:port"
  // with host an IPv4 address or a name ("localhost"); port 0 picks a free
  // port (see port()). Every error message starts with `listen`, so callers
  // prefix their flag's name:
  //   "metrics_listen " + status.message() ->
  //   "metrics_listen 127.0.0.1:9090: cannot bind to 127.0.0.1:9090: 98
  //   (Address already in use)"
  // Errors:
  //   INVALID_ARGUMENT  malformed `listen` (IPv6 too: Debian's civetweb is
  //                     built without it); a route path that is empty, not
  //                     absolute or repeated; a null handler.
  //   UNAVAILABLE       civetweb could not start (port in use, address not
  //                     local, name not resolvable), with civetweb's reason.
  // A route whose path ends in "/*" serves every path under it
  // ("/o/*" serves "/o/a/b"); the longest such prefix wins.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen,
      std::vector<std::pair<std::string, Handler>> routes,
      ServerOptions options = {});

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();

  // "host:port" with the port actually bound, e.g. "127.0.0.1:43117".
  std::string address() const;
  int port() const { return port_; }

 private:
  HttpServer(std::string host,
             absl::flat_hash_map<std::string, Handler> routes,
             std::vector<std::pair<std::string, Handler>> prefix_routes);

  static int OnBeginRequest(mg_connection* conn);
  static int OnLogMessage(const mg_connection* conn, const char* message);

  // Runs the matching handler (or the 404) and writes its response.
  // Returns the status written, as civetweb wants for its access log.
  int Serve(mg_connection* conn) const;

  const std::string host_;
  // Fixed before civetweb starts, so request threads read it without a lock.
  const absl::flat_hash_map<std::string, Handler> routes_;
  // "/o/" -> handler, longest first.
  const std::vector<std::pair<std::string, Handler>> prefix_routes_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace pettube::http
