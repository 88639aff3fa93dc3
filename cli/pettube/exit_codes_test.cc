#include "cli/pettube/exit_codes.h"

#include "gtest/gtest.h"

namespace pettube::cli {
namespace {

TEST(ExitCodesTest, DocumentedCodes) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::UnauthenticatedError("expired")), 3);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("media/x")), 4);
  EXPECT_EQ(ExitCodeFor(absl::PermissionDeniedError("scope")), 1);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("down")), 1);
  // A server's INVALID_ARGUMENT is a failure, not a usage error of ours.
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("title")), 1);
}

}  // namespace
}  // namespace pettube::cli
