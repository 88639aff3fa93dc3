// RunCli without servers: help, usage errors and "not signed in" give the
// documented exit codes before anything is sent.

#include "cli/pettube/cli.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "cli/pettube/config.h"
#include "gtest/gtest.h"

namespace pettube::cli {
namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    home_ = std::string(std::getenv("TEST_TMPDIR")) + "/cli" + std::to_string(++n);
    std::filesystem::create_directories(home_);
    vars_ = {{"XDG_CONFIG_HOME", home_ + "/config"},
             {"PETTUBE_HOME", home_ + "/stack"},
             {"PETTUBE_CATALOG", "127.0.0.1:1"},
             {"PETTUBE_UPLOAD", "127.0.0.1:1"},
             {"PETTUBE_AUTH", "127.0.0.1:1"}};
  }

  int Run(std::vector<std::string> argv) {
    out_.str("");
    err_.str("");
    auto vars = vars_;
    EnvLookup env = [vars](const std::string& k) -> std::optional<std::string> {
      auto it = vars.find(k);
      if (it == vars.end()) return std::nullopt;
      return it->second;
    };
    return RunCli(argv, env, out_, err_, /*terminal=*/false);
  }

  std::string home_;
  std::map<std::string, std::string> vars_;
  std::ostringstream out_, err_;
};

TEST_F(CliTest, HelpExitsZeroForTheToolAndEveryCommand) {
  EXPECT_EQ(Run({"--help"}), 0);
  EXPECT_NE(out_.str().find("Commands:"), std::string::npos);
  EXPECT_EQ(Run({}), 2) << "no command is a usage error";
  EXPECT_NE(err_.str().find("Commands:"), std::string::npos) << "with the help on stderr";
  for (const CommandSpec& c : Commands()) {
    EXPECT_EQ(Run({c.name, "--help"}), 0) << c.name;
    EXPECT_NE(out_.str().find("Usage: pettube " + c.name), std::string::npos) << out_.str();
  }
}

TEST_F(CliTest, EveryReadCommandTakesJson) {
  for (const char* read : {"ls", "show", "watch", "whoami", "play-url"}) {
    const CommandSpec* c = FindCommand(Commands(), read);
    ASSERT_NE(c, nullptr) << read;
    bool json = false;
    for (const FlagSpec& f : c->flags) json |= f.name == "json";
    EXPECT_TRUE(json) << read;
  }
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Run({"frobnicate"}), 2);
  EXPECT_NE(err_.str().find("unknown command"), std::string::npos);
  EXPECT_EQ(Run({"show"}), 2);
  EXPECT_EQ(Run({"ls", "--rendition=1"}), 2);
  EXPECT_EQ(Run({"show", "media/../x"}), 2);
  EXPECT_NE(err_.str().find("NAME:"), std::string::npos) << err_.str();
  EXPECT_EQ(Run({"ls", "--state=SLEEPING"}), 2) << "checked before anything is sent";
}

TEST_F(CliTest, NotSignedInExitsThree) {
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {"ls"}, {"show", "m1"}, {"whoami"}, {"token"}, {"rm", "m1"}, {"watch", "m1"}}) {
    EXPECT_EQ(Run(argv), 3) << argv[0] << ": " << err_.str();
    EXPECT_NE(err_.str().find("pettube login"), std::string::npos) << err_.str();
  }
}

TEST_F(CliTest, DamagedCredentialsAreNotSignedIn) {
  ASSERT_TRUE(WritePrivateFile(home_ + "/config/pettube/credentials.json", "{garbage").ok());
  EXPECT_EQ(Run({"ls"}), 3);
  EXPECT_NE(err_.str().find("unreadable"), std::string::npos) << err_.str();
}

TEST_F(CliTest, MissingAddressSaysHowToGiveIt) {
  vars_.erase("PETTUBE_CATALOG");
  EXPECT_EQ(Run({"ls"}), 1);
  EXPECT_NE(err_.str().find("--catalog=HOST:PORT"), std::string::npos) << err_.str();
}

TEST_F(CliTest, UploadOfAMissingFileIsNotFound) {
  // Signed in with a token that is still valid, so nothing is renewed.
  Credentials c;
  c.login = "dev";
  c.user = "u";
  c.auth_server = "127.0.0.1:1";
  c.access_token = "t";
  c.expire_time = absl::Now() + absl::Hours(1);
  ASSERT_TRUE(
      WritePrivateFile(home_ + "/config/pettube/credentials.json", SerializeCredentials(c)).ok());
  EXPECT_EQ(Run({"upload", home_ + "/no-such.mp4"}), 4) << err_.str();
  EXPECT_EQ(Run({"download", "m1"}), 2) << "-o is required";
}

}  // namespace
}  // namespace pettube::cli
