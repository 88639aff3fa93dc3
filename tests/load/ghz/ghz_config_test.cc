// Checks each ghz configuration in this folder without ghz (not packaged in
// Debian): every key is one ghz documents for config files, the call names a
// method in //proto:pettube_protoset, every field in `data` exists on the
// request message (by proto or JSON name, nested messages, repeated fields
// and maps included), calls that need credentials send a bearer token, and
// every ${PETTUBE_*} placeholder is one run_ghz.sh fills in.

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "nlohmann/json.hpp"

namespace pettube {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using nlohmann::json;

// The JSON keys of ghz's run configuration (ghz runner/config.go, the
// `json:"..."` tags of Config; documented at ghz.sh, "Configuration Files").
const std::set<std::string> kGhzConfigKeys = {
    "proto",         "protoset",        "call",          "cacert",
    "cert",          "key",             "skipTLS",       "cname",
    "authority",     "insecure",        "total",         "concurrency",
    "connections",   "qps",             "duration",      "duration-stop",
    "max-duration",  "timeout",         "data",          "data-file",
    "binary-file",   "metadata",        "metadata-file", "stream-interval",
    "output",        "format",          "connect-timeout", "keepalive",
    "cpus",          "import-paths",    "name",          "tags",
    "reflect-metadata", "debug",        "host",          "enable-compression",
};

// Calls that need no bearer token.
const std::set<std::string> kAnonymousMethods = {
    "pettube.auth.v1.TokenExchange.ExchangeToken",
    "pettube.auth.v1.DevIdentityProvider.MintIdToken",
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Dir() { return testing::RunfilePath("tests/load/ghz"); }

std::vector<std::string> ConfigFiles() {
  std::vector<std::string> files;
  if (DIR* d = opendir(Dir().c_str())) {
    while (dirent* e = readdir(d)) {
      if (absl::EndsWith(e->d_name, ".json")) files.push_back(e->d_name);
    }
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  return files;
}

class GhzConfigTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    pool_ = new google::protobuf::DescriptorPool();
    google::protobuf::FileDescriptorSet set;
    ASSERT_TRUE(set.ParseFromString(ReadAll(testing::RunfilePath("proto/pettube.protoset"))));
    for (const auto& file : set.file()) ASSERT_NE(pool_->BuildFile(file), nullptr);
  }
  static google::protobuf::DescriptorPool* pool_;
};
google::protobuf::DescriptorPool* GhzConfigTest::pool_ = nullptr;

const FieldDescriptor* FindField(const Descriptor* message, const std::string& key) {
  if (const FieldDescriptor* f = message->FindFieldByName(key)) return f;
  for (int i = 0; i < message->field_count(); ++i) {
    if (message->field(i)->json_name() == key) return message->field(i);
  }
  return nullptr;
}

// Adds a failure per key of `value` that `message` has no field for.
void CheckMessage(const Descriptor* message, const json& value, const std::string& path);

void CheckValue(const FieldDescriptor* field, const json& value, const std::string& path,
                bool element) {
  if (field->is_map() && !element) {
    ASSERT_TRUE(value.is_object()) << path << ": a map is a JSON object";
    const FieldDescriptor* map_value = field->message_type()->FindFieldByName("value");
    for (const auto& [k, v] : value.items()) CheckValue(map_value, v, path + "." + k, true);
    return;
  }
  if (field->is_repeated() && !element) {
    ASSERT_TRUE(value.is_array()) << path << ": a repeated field is a JSON array";
    for (size_t i = 0; i < value.size(); ++i) {
      CheckValue(field, value[i], absl::StrCat(path, "[", i, "]"), true);
    }
    return;
  }
  switch (field->type()) {
    case FieldDescriptor::TYPE_MESSAGE:
      if (absl::StartsWith(field->message_type()->full_name(), "google.protobuf.")) {
        return;  // Well-known types have their own JSON forms ("5s", RFC 3339).
      }
      CheckMessage(field->message_type(), value, path);
      return;
    case FieldDescriptor::TYPE_STRING:
    case FieldDescriptor::TYPE_BYTES:
      EXPECT_TRUE(value.is_string()) << path;
      return;
    case FieldDescriptor::TYPE_BOOL:
      EXPECT_TRUE(value.is_boolean()) << path;
      return;
    case FieldDescriptor::TYPE_ENUM:
      EXPECT_TRUE(value.is_string() ? field->enum_type()->FindValueByName(value) != nullptr
                                    : value.is_number_integer())
          << path << ": unknown value of " << field->enum_type()->full_name();
      return;
    default:  // Numbers: JSON numbers (64-bit ones may be strings).
      EXPECT_TRUE(value.is_number() || value.is_string()) << path;
  }
}

void CheckMessage(const Descriptor* message, const json& value, const std::string& path) {
  ASSERT_TRUE(value.is_object()) << path << ": " << message->full_name() << " is a JSON object";
  std::set<std::string> oneofs_set;
  for (const auto& [key, v] : value.items()) {
    const FieldDescriptor* field = FindField(message, key);
    EXPECT_NE(field, nullptr) << path << "." << key << ": no such field in "
                              << message->full_name();
    if (field == nullptr) continue;
    if (const auto* oneof = field->containing_oneof()) {
      EXPECT_TRUE(oneofs_set.insert(oneof->name()).second)
          << path << "." << key << ": a second member of oneof " << oneof->name();
    }
    CheckValue(field, v, path + "." + key, false);
  }
}

TEST(GhzConfigsTest, CoverTheHotRpcs) {
  const std::vector<std::string> files = ConfigFiles();
  std::set<std::string> calls;
  for (const std::string& f : files) {
    calls.insert(json::parse(ReadAll(Dir() + "/" + f)).value("call", ""));
  }
  for (const char* hot :
       {"pettube.auth.v1.TokenExchange.ExchangeToken", "pettube.catalog.v1.MediaCatalog.GetMedia",
        "pettube.catalog.v1.MediaCatalog.ListMedia", "pettube.broker.v1.Broker.Publish",
        "pettube.upload.v1.Upload.CreateUpload"}) {
    EXPECT_TRUE(calls.count(hot)) << hot;
  }
}

TEST_P(GhzConfigTest, MatchesGhzAndTheApi) {
  const std::string text = ReadAll(Dir() + "/" + GetParam());
  json config = json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(config.is_discarded()) << GetParam() << ": not JSON";
  ASSERT_TRUE(config.is_object());
  for (const auto& [key, v] : config.items()) {
    EXPECT_TRUE(kGhzConfigKeys.count(key)) << GetParam() << ": ghz has no config key " << key;
  }
  EXPECT_EQ(config.value("protoset", ""), "bazel-bin/proto/pettube.protoset");
  EXPECT_TRUE(config.value("insecure", false)) << "the local stack serves plaintext on loopback";
  ASSERT_TRUE(config["total"].is_number_unsigned());
  ASSERT_TRUE(config["concurrency"].is_number_unsigned());
  EXPECT_LE(config["concurrency"].get<int>(), config["total"].get<int>())
      << "ghz: total cannot be smaller than concurrency";
  EXPECT_TRUE(std::regex_match(config.value("timeout", "20s"), std::regex("[0-9]+(ms|s|m)")));

  // "package.Service.Method" or "package.Service/Method", as ghz takes it.
  std::string call = config.value("call", "");
  if (auto slash = call.rfind('/'); slash != std::string::npos) call[slash] = '.';
  const auto* method = pool_->FindMethodByName(call);
  ASSERT_NE(method, nullptr) << GetParam() << ": no method " << call << " in the protoset";
  EXPECT_FALSE(method->client_streaming() || method->server_streaming())
      << "these configs measure unary calls";
  ASSERT_TRUE(config.contains("data"));
  CheckMessage(method->input_type(), config["data"], "data");

  const json metadata = config.value("metadata", json::object());
  for (const auto& [k, v] : metadata.items()) {
    EXPECT_TRUE(v.is_string()) << "metadata." << k << ": ghz metadata values are strings";
    EXPECT_EQ(k, absl::AsciiStrToLower(k)) << "gRPC metadata keys are lower case";
  }
  if (!kAnonymousMethods.count(call)) {
    EXPECT_TRUE(std::regex_match(metadata.value("authorization", ""),
                                 std::regex("Bearer \\$\\{PETTUBE_[A-Z_]+TOKEN\\}")))
        << GetParam() << ": " << call << " needs a bearer token";
  }

  // Each ${PETTUBE_*} placeholder is one the script fills in.
  const std::string script = ReadAll(Dir() + "/run_ghz.sh");
  const std::regex placeholder("\\$\\{(PETTUBE_[A-Z_]+)\\}");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), placeholder);
       it != std::sregex_iterator(); ++it) {
    const std::string var = (*it)[1];
    EXPECT_NE(script.find(absl::StrCat("if [ -z \"${", var, ":-}\" ]")), std::string::npos)
        << GetParam() << ": run_ghz.sh does not set " << var;
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, GhzConfigTest, ::testing::ValuesIn(ConfigFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.substr(0, info.param.size() - 5);
                           return name;
                         });

}  // namespace
}  // namespace pettube
