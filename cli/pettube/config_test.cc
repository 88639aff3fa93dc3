#include "cli/pettube/config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "gtest/gtest.h"

namespace pettube::cli {
namespace {

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string TempDir() {
  static int n = 0;
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/cfg" + std::to_string(++n);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(ConfigDirTest, XdgWinsOverHome) {
  EXPECT_EQ(*ConfigDir(FakeEnv({{"XDG_CONFIG_HOME", "/x"}, {"HOME", "/h"}})), "/x/pettube");
  EXPECT_EQ(*ConfigDir(FakeEnv({{"HOME", "/h"}})), "/h/.config/pettube");
  EXPECT_TRUE(absl::IsFailedPrecondition(ConfigDir(FakeEnv({})).status()));
}

TEST(WritePrivateFileTest, CreatesDirectory0700AndFile0600WhateverTheUmask) {
  const mode_t old = ::umask(0);
  const std::string dir = TempDir() + "/new/pettube";
  ASSERT_TRUE(WritePrivateFile(dir + "/credentials.json", "secret").ok());
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/credentials.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700);
  EXPECT_EQ(*ReadWholeFile(dir + "/credentials.json"), "secret");
  // Rewriting replaces the content and keeps the mode.
  ASSERT_TRUE(WritePrivateFile(dir + "/credentials.json", "second").ok());
  EXPECT_EQ(*ReadWholeFile(dir + "/credentials.json"), "second");
  EXPECT_TRUE(absl::IsNotFound(ReadWholeFile(dir + "/absent").status()));
}

TEST(CredentialsTest, RoundTrips) {
  Credentials c;
  c.auth_server = "127.0.0.1:5";
  c.login = "dev";
  c.user = "alice";
  c.access_token = "tok";
  c.expire_time = absl::FromUnixSeconds(2000000000);
  c.identity = "identities/abc";
  c.scopes = {"media.read", "media.upload"};
  auto back = ParseCredentials(SerializeCredentials(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->auth_server, c.auth_server);
  EXPECT_EQ(back->user, "alice");
  EXPECT_EQ(back->access_token, "tok");
  EXPECT_EQ(back->expire_time, c.expire_time);
  EXPECT_EQ(back->scopes, c.scopes);
  EXPECT_EQ(back->id_token_expire_time, absl::InfinitePast());
}

TEST(CredentialsTest, DamagedFilesAreRejectedWithTheField) {
  EXPECT_TRUE(absl::IsInvalidArgument(ParseCredentials("not json").status()));
  auto bad = ParseCredentials(R"({"login": "dev", "expire_unix": "soon"})");
  ASSERT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_NE(bad.status().message().find("credentials.expire_unix"), absl::string_view::npos);
  auto kind = ParseCredentials(R"({"login": "password"})");
  ASSERT_TRUE(absl::IsInvalidArgument(kind.status()));
  EXPECT_NE(kind.status().message().find("credentials.login"), absl::string_view::npos);
}

TEST(CredentialsTest, RenewedFiveMinutesBeforeExpiry) {
  Credentials c;
  c.access_token = "t";
  const absl::Time now = absl::FromUnixSeconds(1000000);
  c.expire_time = now + absl::Minutes(6);
  EXPECT_FALSE(NeedsRenewal(c, now));
  c.expire_time = now + absl::Minutes(4);
  EXPECT_TRUE(NeedsRenewal(c, now));
  c.expire_time = now + absl::Hours(1);
  c.access_token.clear();
  EXPECT_TRUE(NeedsRenewal(c, now));
}

TEST(ResumeStoreTest, RemembersUploadsPerFileVersion) {
  const std::string path = TempDir() + "/uploads.json";
  auto store = ResumeStore::Load(path);
  ASSERT_TRUE(store.ok());
  const std::string key = ResumeStore::Key("/v/a.mp4", 100, 5);
  EXPECT_NE(key, ResumeStore::Key("/v/a.mp4", 100, 6));   // touched
  EXPECT_NE(key, ResumeStore::Key("/v/a.mp4", 101, 5));   // grown
  store->Put(key, "uploads/u1");
  ASSERT_TRUE(store->Save().ok());
  auto again = ResumeStore::Load(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Find(key), "uploads/u1");
  again->Remove(key);
  ASSERT_TRUE(again->Save().ok());
  EXPECT_EQ(ResumeStore::Load(path)->Find(key), std::nullopt);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST(ResumeStoreTest, DamagedFileIsAnError) {
  const std::string path = TempDir() + "/uploads.json";
  ASSERT_TRUE(WritePrivateFile(path, "[1,2]").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ResumeStore::Load(path).status()));
}

TEST(EndpointsTest, FlagBeatsEnvironmentBeatsTheStackFile) {
  const std::string root = TempDir();
  const std::string stack = root + "/.pettube/run";
  std::filesystem::create_directories(stack);
  std::filesystem::create_directories(root + "/sub/dir");
  ASSERT_TRUE(WritePrivateFile(stack + "/endpoints",
                               "# written by scripts/up.sh\nPETTUBE_AUTH=127.0.0.1:1\n"
                               "PETTUBE_UPLOAD=127.0.0.1:2\nPETTUBE_CATALOG = 127.0.0.1:3\n")
                  .ok());
  // Found from a subdirectory of the checkout.
  Endpoints e = ResolveEndpoints({{"catalog", "flag:9"}}, FakeEnv({{"PETTUBE_UPLOAD", "env:8"}}),
                                 root + "/sub/dir", ReadWholeFile);
  EXPECT_EQ(e.auth, "127.0.0.1:1");
  EXPECT_EQ(e.upload, "env:8");
  EXPECT_EQ(e.catalog, "flag:9");
}

TEST(EndpointsTest, PettubeHomeNamesTheStack) {
  const std::string home = TempDir();
  ASSERT_TRUE(WritePrivateFile(home + "/run/endpoints", "PETTUBE_CATALOG=c:1\n").ok());
  Endpoints e = ResolveEndpoints({}, FakeEnv({{"PETTUBE_HOME", home}}), "/", ReadWholeFile);
  EXPECT_EQ(e.catalog, "c:1");
  EXPECT_EQ(e.auth, "");
  auto missing = RequireAddress(e.auth, "auth", "auth-token-exchange");
  ASSERT_TRUE(absl::IsFailedPrecondition(missing.status()));
  EXPECT_NE(missing.status().message().find("--auth=HOST:PORT"), absl::string_view::npos);
  EXPECT_NE(missing.status().message().find("PETTUBE_AUTH"), absl::string_view::npos);
}

}  // namespace
}  // namespace pettube::cli
