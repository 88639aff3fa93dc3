#include "libs/status/grpc_status.h"

#include "gtest/gtest.h"

namespace pettube::status {
namespace {

TEST(GrpcStatusTest, OkMapsToOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, EveryCanonicalCodeKeepsItsMeaning) {
  const std::pair<absl::StatusCode, grpc::StatusCode> pairs[] = {
      {absl::StatusCode::kCancelled, grpc::CANCELLED},
      {absl::StatusCode::kUnknown, grpc::UNKNOWN},
      {absl::StatusCode::kInvalidArgument, grpc::INVALID_ARGUMENT},
      {absl::StatusCode::kDeadlineExceeded, grpc::DEADLINE_EXCEEDED},
      {absl::StatusCode::kNotFound, grpc::NOT_FOUND},
      {absl::StatusCode::kAlreadyExists, grpc::ALREADY_EXISTS},
      {absl::StatusCode::kPermissionDenied, grpc::PERMISSION_DENIED},
      {absl::StatusCode::kResourceExhausted, grpc::RESOURCE_EXHAUSTED},
      {absl::StatusCode::kFailedPrecondition, grpc::FAILED_PRECONDITION},
      {absl::StatusCode::kAborted, grpc::ABORTED},
      {absl::StatusCode::kOutOfRange, grpc::OUT_OF_RANGE},
      {absl::StatusCode::kUnimplemented, grpc::UNIMPLEMENTED},
      {absl::StatusCode::kInternal, grpc::INTERNAL},
      {absl::StatusCode::kUnavailable, grpc::UNAVAILABLE},
      {absl::StatusCode::kDataLoss, grpc::DATA_LOSS},
      {absl::StatusCode::kUnauthenticated, grpc::UNAUTHENTICATED},
  };
  for (const auto& [absl_code, grpc_code] : pairs) {
    const grpc::Status wire = ToGrpcStatus(absl::Status(absl_code, "why"));
    EXPECT_EQ(wire.error_code(), grpc_code);
    EXPECT_EQ(wire.error_message(), "why");
    EXPECT_EQ(FromGrpcStatus(wire).code(), absl_code);
  }
}

TEST(GrpcStatusTest, ClientSideStatusNamesTheCall) {
  const absl::Status s =
      FromGrpcStatus(grpc::Status(grpc::NOT_FOUND, "no such subscription"), "Subscribe");
  EXPECT_EQ(s.message(), "Subscribe: no such subscription");
}

}  // namespace
}  // namespace pettube::status
