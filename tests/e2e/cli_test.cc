// The pettube CLI against the real suite, as a person uses it: login,
// upload, watch, ls/show/play-url (--json too), download with a Range
// resume from a partial file, rm, and the exit codes for not found and
// not signed in.

#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/pettube/config.h"
#include "cli/pettube/session.h"
#include "gtest/gtest.h"
#include "libs/client/channel.h"
#include "libs/testing/child_process.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/local_stack.h"

namespace pettube::e2e {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::NewTempDir("cli");
    auto stack = LocalStack::Start(dir_ + "/stack", testing::RunfilePath(""));
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
    std::filesystem::create_directories(dir_ + "/home/run");
    std::ofstream(dir_ + "/home/run/endpoints") << stack_->EndpointsFile();
    clip_ = dir_ + "/rex.mp4";
    const std::string cmd = absl::StrCat(
        "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=25 "
        "-f lavfi -i sine=frequency=440 -t 2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p "
        "-c:a aac -shortest -movflags +faststart ",
        clip_);
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  // Runs `pettube ARGS` with no address flags (the stack's endpoints file
  // is found through PETTUBE_HOME); returns the exit code, output in out_.
  int Pettube(const std::string& args) {
    const std::string out = dir_ + "/out.txt";
    const std::string cmd =
        absl::StrCat("cd ", dir_, " && env -u PETTUBE_AUTH -u PETTUBE_UPLOAD -u PETTUBE_CATALOG ",
                     "XDG_CONFIG_HOME=", dir_, "/config PETTUBE_HOME=", dir_, "/home ",
                     testing::RunfilePath("cli/pettube/pettube"), " ", args, " > ", out, " 2>&1");
    const int status = std::system(cmd.c_str());
    out_ = ReadAll(out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string dir_, clip_, out_;
  std::unique_ptr<LocalStack> stack_;
};

TEST_F(CliTest, APersonsSessionFromLoginToRm) {
  EXPECT_EQ(Pettube("ls"), 3) << out_;  // Not signed in yet.
  ASSERT_EQ(Pettube("login rex-owner"), 0) << out_;
  EXPECT_NE(out_.find("signed in as rex-owner"), std::string::npos) << out_;

  ASSERT_EQ(Pettube(absl::StrCat("upload ", clip_, " --title 'Rex at the beach' --json")), 0)
      << out_;
  const auto uploaded = nlohmann::json::parse(out_.substr(out_.rfind('{')));
  const std::string media = uploaded["media"];
  ASSERT_EQ(Pettube(absl::StrCat("watch ", media, " --timeout=120s")), 0) << out_;
  EXPECT_NE(out_.find("READY"), std::string::npos) << out_;

  ASSERT_EQ(Pettube("ls"), 0) << out_;
  EXPECT_NE(out_.find(media), std::string::npos) << out_;
  EXPECT_NE(out_.find("Rex at the beach"), std::string::npos) << out_;
  ASSERT_EQ(Pettube("ls --json"), 0) << out_;
  const auto listed = nlohmann::json::parse(out_);
  ASSERT_EQ(listed.size(), 1u) << out_;
  EXPECT_EQ(listed[0]["name"], media);
  EXPECT_EQ(listed[0]["state"], "READY");

  ASSERT_EQ(Pettube(absl::StrCat("show ", media, " --json")), 0) << out_;
  const auto shown = nlohmann::json::parse(out_);
  ASSERT_FALSE(shown["renditions"].empty());
  const std::string rendition = shown["renditions"][0]["name"];
  const int64_t size = std::stoll(shown["renditions"][0]["size_bytes"].get<std::string>());
  ASSERT_EQ(Pettube(absl::StrCat("play-url ", media, " --rendition=hls")), 0) << out_;
  EXPECT_NE(out_.find("master.m3u8"), std::string::npos) << out_;
  EXPECT_EQ(Pettube(absl::StrCat("play-url ", media, " --rendition=4k")), 4) << out_;

  // Download resumes from a partial file: the first third is already there.
  const std::string target = dir_ + "/rex-" + rendition + ".mp4";
  ASSERT_EQ(Pettube(absl::StrCat("download ", media, " -o ", dir_, "/whole.mp4")), 0) << out_;
  const std::string whole = ReadAll(dir_ + "/whole.mp4");
  ASSERT_EQ(static_cast<int64_t>(whole.size()), size);
  std::ofstream(target + ".part", std::ios::binary) << whole.substr(0, whole.size() / 3);
  ASSERT_EQ(Pettube(absl::StrCat("download ", media, " --rendition=", rendition, " -o ", target)),
            0)
      << out_;
  EXPECT_NE(out_.find("resuming at"), std::string::npos) << out_;
  EXPECT_EQ(ReadAll(target), whole);
  EXPECT_FALSE(std::filesystem::exists(target + ".part"));
  // A wrong partial file (not a prefix of the object) fails the checksum.
  std::ofstream(target + ".part", std::ios::binary) << std::string(whole.size() / 2, 'x');
  EXPECT_EQ(Pettube(absl::StrCat("download ", media, " -o ", target)), 1) << out_;
  EXPECT_NE(out_.find("SHA-256"), std::string::npos) << out_;

  ASSERT_EQ(Pettube(absl::StrCat("rm ", media)), 0) << out_;
  EXPECT_EQ(Pettube(absl::StrCat("show ", media)), 4) << out_;
  ASSERT_EQ(Pettube("logout"), 0);
  EXPECT_EQ(Pettube("whoami"), 3) << out_;
}

TEST_F(CliTest, LoginWithAnIdTokenFromStdin) {
  // Any trusted OIDC issuer's ID token; here the dev provider's, minted
  // separately, as a Google ID token would be.
  ASSERT_EQ(Pettube(absl::StrCat("dev-id-token oidc-user")), 0) << out_;
  std::ofstream(dir_ + "/id_token.txt") << out_;
  ASSERT_EQ(Pettube("login --id_token_file=- < id_token.txt"), 0) << out_;
  ASSERT_EQ(Pettube("whoami --json"), 0) << out_;
  const auto who = nlohmann::json::parse(out_);
  EXPECT_EQ(who["login"], "oidc");
  EXPECT_TRUE(absl::StartsWith(who["identity"].get<std::string>(), "identities/")) << out_;
  std::ofstream(dir_ + "/bad.txt") << "not-a-jwt";
  EXPECT_EQ(Pettube("login --id_token_file=bad.txt"), 3) << out_;
}

TEST_F(CliTest, CredentialsAreRenewedBeforeTheyExpire) {
  ASSERT_EQ(Pettube("login renew-me"), 0) << out_;
  const std::string path = dir_ + "/config/pettube/credentials.json";
  auto before = cli::ParseCredentials(ReadAll(path));
  ASSERT_TRUE(before.ok());
  // A clock 56 minutes ahead: the hour-long token has 4 minutes left.
  cli::Session session(dir_ + "/config/pettube", "",
                       [](const std::string& target) {
                         return client::MakeChannel(target, client::ChannelOptions{});
                       },
                       [] { return absl::Now() + absl::Minutes(56); });
  auto renewed = session.Current();
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_NE(renewed->access_token, before->access_token);
  EXPECT_GE(renewed->expire_time, before->expire_time);  // Issued by the real clock.
  EXPECT_EQ(renewed->identity, before->identity);
  auto stored = cli::ParseCredentials(ReadAll(path));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->access_token, renewed->access_token);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

}  // namespace
}  // namespace pettube::e2e
