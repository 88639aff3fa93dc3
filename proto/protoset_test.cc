// The protoset artifact holds every API exactly as compiled into the
// binaries: each service of each generated API file is found in it with the
// same methods, request/response types and streaming shape, and it builds
// on its own (imports included).

#include <fstream>
#include <sstream>
#include <string>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "libs/testing/child_process.h"

namespace pettube {
namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;
using google::protobuf::ServiceDescriptor;

// API files as the C++ code sees them (linked into this test).
const char* const kApiFiles[] = {
    "proto/pettube/auth/v1/auth.proto",         "proto/pettube/broker/v1/broker.proto",
    "proto/pettube/catalog/v1/catalog.proto",   "proto/pettube/events/v1/events.proto",
    "proto/pettube/transcode/v1/transcode.proto", "proto/pettube/upload/v1/upload.proto",
    "grpc/health/v1/health.proto",
};

class ProtosetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(testing::RunfilePath("proto/pettube.protoset"), std::ios::binary);
    ASSERT_TRUE(in) << "protoset not in runfiles";
    std::stringstream bytes;
    bytes << in.rdbuf();
    ASSERT_TRUE(set_.ParseFromString(bytes.str()));
    // --include_imports writes files in dependency order.
    for (const auto& file : set_.file()) {
      ASSERT_NE(pool_.BuildFile(file), nullptr) << file.name();
    }
  }

  google::protobuf::FileDescriptorSet set_;
  DescriptorPool pool_;
};

TEST_F(ProtosetTest, HoldsEveryApiFileWithItsImports) {
  for (const char* name : kApiFiles) {
    EXPECT_NE(pool_.FindFileByName(name), nullptr) << name;
  }
  EXPECT_NE(pool_.FindFileByName("google/protobuf/timestamp.proto"), nullptr);
  EXPECT_NE(pool_.FindFileByName("proto/io/cloudevents/v1/cloudevents.proto"), nullptr);
}

TEST_F(ProtosetTest, EveryCompiledServiceIsFoundWithTheSameMethods) {
  int services = 0;
  for (const char* name : kApiFiles) {
    const FileDescriptor* compiled = DescriptorPool::generated_pool()->FindFileByName(name);
    ASSERT_NE(compiled, nullptr) << name << " not linked into the test";
    for (int s = 0; s < compiled->service_count(); ++s, ++services) {
      const ServiceDescriptor* want = compiled->service(s);
      const ServiceDescriptor* got = pool_.FindServiceByName(want->full_name());
      ASSERT_NE(got, nullptr) << want->full_name();
      ASSERT_EQ(got->method_count(), want->method_count()) << want->full_name();
      for (int m = 0; m < want->method_count(); ++m) {
        const auto* wm = want->method(m);
        const auto* gm = got->FindMethodByName(wm->name());
        ASSERT_NE(gm, nullptr) << wm->full_name();
        EXPECT_EQ(gm->input_type()->full_name(), wm->input_type()->full_name());
        EXPECT_EQ(gm->output_type()->full_name(), wm->output_type()->full_name());
        EXPECT_EQ(gm->client_streaming(), wm->client_streaming()) << wm->full_name();
        EXPECT_EQ(gm->server_streaming(), wm->server_streaming()) << wm->full_name();
      }
    }
  }
  // Token exchange, dev IdP, broker, catalog, coordinator, upload, health.
  EXPECT_GE(services, 7);
}

TEST_F(ProtosetTest, KeepsCommentsForToolsThatShowThem) {
  const ServiceDescriptor* catalog = pool_.FindServiceByName("pettube.catalog.v1.MediaCatalog");
  ASSERT_NE(catalog, nullptr);
  google::protobuf::SourceLocation where;
  ASSERT_TRUE(catalog->FindMethodByName("GetMedia")->GetSourceLocation(&where));
  EXPECT_FALSE(where.leading_comments.empty());
}

}  // namespace
}  // namespace pettube
