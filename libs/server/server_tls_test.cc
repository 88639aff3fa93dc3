// Serving over TLS with certificates from files, and refusing plaintext
// clients on it; the client side's transport rule.
#include <grpcpp/grpcpp.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/client/channel.h"
#include "libs/server/server.h"

namespace pettube::server {
namespace {

class ServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::getenv("TEST_TMPDIR");
    const std::string cmd = absl::StrCat(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 ",
        "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost ", "-keyout ", dir_,
        "/key.pem -out ", dir_, "/cert.pem 2>/dev/null");
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a test certificate";
  }
  std::string dir_;
};

TEST_F(ServerTlsTest, ServesTlsWithCertificateFilesAndRefusesPlaintextClients) {
  Options opts;
  opts.service_name = "tls-test";
  opts.listen = "127.0.0.1:0";
  opts.metrics_listen = "127.0.0.1:0";
  opts.data_dir = dir_;
  opts.drain_timeout = absl::Seconds(1);
  opts.tls_cert_file = dir_ + "/cert.pem";
  opts.tls_key_file = dir_ + "/key.pem";
  auto server = Server::Start(opts, {});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string target = (*server)->grpc_address();

  client::ChannelOptions tls;
  tls.tls_ca_file = dir_ + "/cert.pem";
  auto secure = client::MakeChannel(target, tls);
  ASSERT_TRUE(secure.ok()) << secure.status();
  EXPECT_TRUE(
      (*secure)->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10)));

  auto plain = client::MakeChannel(target, {});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE((*plain)->WaitForConnected(std::chrono::system_clock::now() +
                                          std::chrono::milliseconds(500)));
  (*server)->Shutdown();
}

TEST_F(ServerTlsTest, MissingCertificateFileIsAClearStartupError) {
  Options opts;
  opts.listen = "127.0.0.1:0";
  opts.metrics_listen = "127.0.0.1:0";
  opts.tls_cert_file = dir_ + "/nope.pem";
  opts.tls_key_file = dir_ + "/key.pem";
  auto server = Server::Start(opts, {});
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("nope.pem"), absl::string_view::npos);
}

TEST(ChannelTest, PlaintextToARemoteHostIsRefusedUnlessAllowed) {
  auto refused = client::MakeChannel("10.1.2.3:443", {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  client::ChannelOptions allow;
  allow.allow_plaintext = true;
  EXPECT_TRUE(client::MakeChannel("10.1.2.3:443", allow).ok());
  EXPECT_TRUE(client::MakeChannel("127.0.0.1:1", {}).ok());
  EXPECT_TRUE(client::MakeChannel("dns:///localhost:1", {}).ok());
}

}  // namespace
}  // namespace pettube::server
