#include "libs/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pettube::http {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // Lower-case names.
  std::string body;
};

// Sends `request` verbatim to 127.0.0.1:`port` and reads the response until
// the server closes the connection (it never keeps one alive). Plain sockets,
// so the test sees exactly the bytes the server wrote.
absl::StatusOr<ClientResponse> Exchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  // A deadline rather than a hang if the server misbehaves.
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError("connect failed");
  }
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send failed");
  }
  std::string raw;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) raw.append(buffer, n);
  close(fd);
  if (n < 0) return absl::DeadlineExceededError("recv failed or timed out");

  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat("no header end in: ", raw));
  }
  ClientResponse response;
  response.body = raw.substr(header_end + 4);
  std::vector<std::string> lines =
      absl::StrSplit(raw.substr(0, header_end), "\r\n");
  // "HTTP/1.1 200 OK"
  std::vector<absl::string_view> status_line =
      absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (status_line.size() < 2 ||
      !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::DataLossError(absl::StrCat("bad status line: ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  return response;
}

std::string Request(absl::string_view method, absl::string_view target,
                    absl::string_view extra_headers = "") {
  return absl::StrCat(method, " ", target,
                      " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n",
                      extra_headers, "\r\n");
}

Response Hello(const http::Request&) {
  Response response;
  response.body = "hello\n";
  response.headers.emplace_back("X-Pettube-Test", "yes");
  return response;
}

// Echoes what the handler was given, one field per line.
Response Echo(const http::Request& request) {
  Response response;
  const auto custom = request.headers.find("x-custom");
  response.body =
      absl::StrCat("method=", request.method, "\npath=", request.path,
                   "\nquery=", request.query, "\nx-custom=",
                   custom == request.headers.end() ? "<none>" : custom->second,
                   "\nremote=", request.remote_addr, "\n");
  return response;
}

Response Unavailable(const http::Request&) {
  Response response;
  response.status = 503;
  response.content_type = "application/json";
  response.body = "{\"error\":\"draining\"}";
  return response;
}

Response InjectedHeader(const http::Request&) {
  Response response;
  response.headers.emplace_back("X-Bad", "a\r\nSet-Cookie: evil=1");
  return response;
}

// Streams 1 MiB of a repeating pattern, in 64 KiB writes.
Response Streamed(const http::Request& request) {
  Response response;
  response.content_type = "application/octet-stream";
  response.stream_length = 1 << 20;
  response.stream_body = [](const std::function<bool(absl::string_view)>& sink) {
    std::string chunk(64 << 10, '\0');
    for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>('a' + i % 26);
    for (int i = 0; i < 16; ++i) {
      if (!sink(chunk)) return;
    }
  };
  return response;
}

Response Under(const http::Request& request) {
  Response response;
  response.body = "under " + request.path + "\n";
  return response;
}

Response DeeperUnder(const http::Request& request) {
  Response response;
  response.body = "deeper " + request.path + "\n";
  return response;
}

// One server for the whole suite: each stop costs ~2 s.
class HttpServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start("127.0.0.1:0", {{"/hello", Hello},
                                          {"/echo", Echo},
                                          {"/unavailable", Unavailable},
                                          {"/injected", InjectedHeader},
                                          {"/stream", Streamed},
                                          {"/o/*", Under},
                                          {"/o/deep/*", DeeperUnder}});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }

  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static ClientResponse Fetch(const std::string& request) {
    absl::StatusOr<ClientResponse> response =
        Exchange(server_->port(), request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *std::move(response) : ClientResponse{};
  }

  static HttpServer* server_;
};

HttpServer* HttpServerTest::server_ = nullptr;

TEST_F(HttpServerTest, RouteAnswersWithTheHandlersStatusBodyAndHeaders) {
  ClientResponse response = Fetch(Request("GET", "/hello"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "hello\n");
  EXPECT_EQ(response.headers["content-type"], "text/plain; charset=utf-8");
  EXPECT_EQ(response.headers["content-length"], "6");
  EXPECT_EQ(response.headers["x-pettube-test"], "yes");
  EXPECT_EQ(response.headers["connection"], "close");
  EXPECT_THAT(response.headers["date"], EndsWith(" GMT"));
}

TEST_F(HttpServerTest, HandlerSeesMethodPathQueryLowerCaseHeadersAndPeer) {
  ClientResponse response = Fetch(
      Request("GET", "/echo?a=1&b=%20x", "X-Custom: One\r\nx-CUSTOM: Two\r\n"));
  ASSERT_EQ(response.status, 200);
  EXPECT_THAT(response.body, StartsWith("method=GET\n"
                                        "path=/echo\n"
                                        "query=a=1&b=%20x\n"
                                        "x-custom=One, Two\n"
                                        "remote=127.0.0.1:"));
}

TEST_F(HttpServerTest, HandlerStatusAndContentTypeArePassedThrough) {
  ClientResponse response = Fetch(Request("GET", "/unavailable"));
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(response.headers["content-type"], "application/json");
  EXPECT_EQ(response.body, "{\"error\":\"draining\"}");
}

TEST_F(HttpServerTest, UnknownPathIs404) {
  ClientResponse response = Fetch(Request("GET", "/nope"));
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.body, "not found\n");
}

TEST_F(HttpServerTest, StreamedBodyArrivesWholeWithItsLength) {
  ClientResponse response = Fetch(Request("GET", "/stream"));
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(response.headers["content-length"], "1048576");
  ASSERT_EQ(response.body.size(), 1u << 20);
  EXPECT_EQ(response.body.substr(0, 3), "abc");
  EXPECT_EQ(response.body[(64 << 10) + 27], 'b');
  ClientResponse head = Fetch(Request("HEAD", "/stream"));
  EXPECT_EQ(head.headers["content-length"], "1048576");
  EXPECT_TRUE(head.body.empty());
}

TEST_F(HttpServerTest, PrefixRoutesServeEveryPathUnderThemLongestFirst) {
  EXPECT_EQ(Fetch(Request("GET", "/o/a/b")).body, "under /o/a/b\n");
  EXPECT_EQ(Fetch(Request("GET", "/o/deep/x")).body, "deeper /o/deep/x\n");
  EXPECT_EQ(Fetch(Request("GET", "/o")).status, 404);
}

TEST_F(HttpServerTest, RoutesMatchExactPathsNotPrefixes) {
  EXPECT_EQ(Fetch(Request("GET", "/hello/more")).status, 404);
  EXPECT_EQ(Fetch(Request("GET", "/hell")).status, 404);
  EXPECT_EQ(Fetch(Request("GET", "/")).status, 404);
}

TEST_F(HttpServerTest, HeadGetsTheHeadersWithoutTheBody) {
  ClientResponse response = Fetch(Request("HEAD", "/hello"));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.headers["content-length"], "6");
  EXPECT_EQ(response.body, "");
}

TEST_F(HttpServerTest, HeaderWithALineBreakBecomesA500) {
  ClientResponse response = Fetch(Request("GET", "/injected"));
  EXPECT_EQ(response.status, 500);
  EXPECT_EQ(response.headers.count("set-cookie"), 0);
  EXPECT_EQ(response.headers.count("x-bad"), 0);
}

TEST_F(HttpServerTest, ConcurrentClientsAreAllServed) {
  constexpr int kClients = 8;
  constexpr int kRequestsEach = 10;
  std::vector<int> ok(kClients, 0);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([c, &ok] {
      for (int i = 0; i < kRequestsEach; ++i) {
        absl::StatusOr<ClientResponse> response =
            Exchange(server_->port(), Request("GET", "/hello"));
        if (response.ok() && response->status == 200 &&
            response->body == "hello\n") {
          ++ok[c];
        }
      }
    });
  }
  for (std::thread& client : clients) client.join();
  for (int c = 0; c < kClients; ++c) EXPECT_EQ(ok[c], kRequestsEach);
}

TEST_F(HttpServerTest, AddressNamesTheBoundPort) {
  EXPECT_GT(server_->port(), 0);
  EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", server_->port()));
}

TEST_F(HttpServerTest, StartingOnAPortInUseIsUnavailableWithAClearMessage) {
  absl::StatusOr<std::unique_ptr<HttpServer>> second =
      HttpServer::Start(server_->address(), {{"/hello", Hello}});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  const std::string message(second.status().message());
  EXPECT_THAT(message, StartsWith(server_->address()));
  EXPECT_THAT(message, HasSubstr("Address already in use"));
}

TEST(HttpServerStartTest, MalformedListenAddressesAreInvalidArgument) {
  for (const char* listen :
       {"", "8080", "127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:http",
        "127.0.0.1:-1", "127.0.0.1:65536", "127.0.0.1:123456", "[::1]:8080",
        "::1:8080", "127.0.0.1:80,0.0.0.0:81", "127.0.0.1:8080s",
        "bad host:80"}) {
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start(listen, {});
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument)
        << "listen \"" << listen << "\": " << server.status();
  }
}

TEST(HttpServerStartTest, BadRoutesAreInvalidArgument) {
  EXPECT_EQ(
      HttpServer::Start("127.0.0.1:0", {{"relative", Hello}}).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpServer::Start("127.0.0.1:0", {{"/x", Hello}, {"/x", Echo}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpServer::Start("127.0.0.1:0", {{"/x", nullptr}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pettube::http
