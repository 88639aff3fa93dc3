// Reflection alone resolves every service every PetTube process lists,
// with each running wired to its peers as in production (the transcode
// worker and supervisor need their peers to start at all).

#include "gtest/gtest.h"
#include "libs/testing/child_process.h"
#include "libs/testing/reflection_check.h"
#include "tests/e2e/local_stack.h"

namespace pettube::e2e {
namespace {

TEST(ReflectionTest, EveryProcessResolvesEveryListedService) {
  auto stack = LocalStack::Start(testing::NewTempDir("stack"), testing::RunfilePath(""));
  ASSERT_TRUE(stack.ok()) << stack.status();
  ASSERT_TRUE((*stack)->StartService("transcode-supervisor").ok());
  std::vector<std::string> all = LocalStack::AllServices();
  all.push_back("transcode-supervisor");
  for (const std::string& name : all) {
    auto services = testing::ResolveServicesOverReflection((*stack)->Grpc(name));
    ASSERT_TRUE(services.ok()) << name << ": " << services.status();
    EXPECT_NE(std::find(services->begin(), services->end(), "grpc.health.v1.Health"),
              services->end())
        << name;
  }
}

}  // namespace
}  // namespace pettube::e2e
