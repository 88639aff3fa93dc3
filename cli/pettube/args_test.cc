#include "cli/pettube/args.h"

#include "gtest/gtest.h"

namespace pettube::cli {
namespace {

const std::vector<CommandSpec>& Specs() {
  static const auto* specs = new std::vector<CommandSpec>{
      {"download", "NAME", "get it", "", 1, 1,
       {{"rendition", "R", "which"}, {"output", "FILE", "where", 'o'}, {"json", "", "json"}}},
      {"ls", "", "list", "", 0, 0, {{"json", "", "json"}}},
  };
  return *specs;
}
const std::vector<FlagSpec>& Globals() {
  static const auto* g = new std::vector<FlagSpec>{{"catalog", "HOST:PORT", "catalog"}};
  return *g;
}

absl::StatusOr<Invocation> Parse(std::vector<std::string> argv) {
  return ParseArgs(Specs(), Globals(), argv);
}

TEST(ArgsTest, ParsesFlagsInEveryForm) {
  auto inv = Parse({"--catalog=h:1", "download", "media/a", "--rendition", "720p", "-o", "f.mp4",
                    "--json"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command, "download");
  EXPECT_EQ(inv->args, std::vector<std::string>{"media/a"});
  EXPECT_EQ(inv->Get("catalog"), "h:1");
  EXPECT_EQ(inv->Get("rendition"), "720p");
  EXPECT_EQ(inv->Get("output"), "f.mp4");
  EXPECT_TRUE(inv->Has("json"));
  EXPECT_FALSE(inv->help);
}

TEST(ArgsTest, GlobalFlagsWorkAfterTheCommand) {
  auto inv = Parse({"ls", "--catalog", "h:2"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->Get("catalog"), "h:2");
}

TEST(ArgsTest, DoubleDashEndsFlags) {
  auto inv = Parse({"download", "--", "--weird-name"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->args, std::vector<std::string>{"--weird-name"});
}

TEST(ArgsTest, UnknownCommandIsAUsageError) {
  auto inv = Parse({"uplaod"});
  EXPECT_TRUE(absl::IsInvalidArgument(inv.status()));
  EXPECT_NE(inv.status().message().find("uplaod"), absl::string_view::npos);
}

TEST(ArgsTest, FlagOfAnotherCommandIsRejected) {
  auto inv = Parse({"ls", "--rendition=720p"});
  EXPECT_TRUE(absl::IsInvalidArgument(inv.status()));
  EXPECT_NE(inv.status().message().find("--rendition"), absl::string_view::npos);
}

TEST(ArgsTest, MissingValueAndValueForBooleanAreRejected) {
  EXPECT_TRUE(absl::IsInvalidArgument(Parse({"download", "a", "--rendition"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Parse({"download", "a", "-o"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Parse({"ls", "--json=yes"}).status()));
  auto f = Parse({"ls", "--json=false"});
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->Has("json"));
}

TEST(ArgsTest, ArgumentCountIsChecked) {
  EXPECT_TRUE(absl::IsInvalidArgument(Parse({"download"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Parse({"download", "a", "b"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Parse({"ls", "x"}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Parse({}).status()));
}

TEST(ArgsTest, HelpNeedsNoArguments) {
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"download", "--help"}, {"download", "-h"}, {"help", "download"}}) {
    auto inv = Parse(argv);
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_TRUE(inv->help);
    EXPECT_EQ(inv->command, "download");
  }
  auto top = Parse({"--help"});
  ASSERT_TRUE(top.ok());
  EXPECT_TRUE(top->help);
  EXPECT_EQ(top->command, "");
}

TEST(ArgsTest, HelpTextListsFlagsAndExitCodes) {
  const std::string one = HelpText(Specs(), Globals(), FindCommand(Specs(), "download"));
  EXPECT_NE(one.find("Usage: pettube download NAME"), std::string::npos) << one;
  EXPECT_NE(one.find("--output=FILE, -o FILE"), std::string::npos) << one;
  EXPECT_NE(one.find("--catalog=HOST:PORT"), std::string::npos) << one;
  EXPECT_NE(one.find("3 not signed in"), std::string::npos) << one;
  const std::string all = HelpText(Specs(), Globals(), nullptr);
  EXPECT_NE(all.find("  ls"), std::string::npos) << all;
  EXPECT_NE(all.find("  download NAME"), std::string::npos) << all;
}

}  // namespace
}  // namespace pettube::cli
