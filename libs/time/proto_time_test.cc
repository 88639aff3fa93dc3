#include "libs/time/proto_time.h"

#include "gtest/gtest.h"

namespace pettube::time {
namespace {

TEST(ProtoTimeTest, TimestampsRoundTripToTheNanosecond) {
  const absl::Time t = absl::FromUnixNanos(1795000000123456789);
  const auto p = ToProto(t);
  EXPECT_EQ(p.seconds(), 1795000000);
  EXPECT_EQ(p.nanos(), 123456789);
  EXPECT_EQ(FromProto(p), t);
}

TEST(ProtoTimeTest, TimesBeforeTheEpochKeepNanosPositive) {
  const absl::Time t = absl::FromUnixNanos(-1500000000);  // -1.5 s
  const auto p = ToProto(t);
  EXPECT_EQ(p.seconds(), -2);
  EXPECT_EQ(p.nanos(), 500000000);
  EXPECT_EQ(FromProto(p), t);
}

TEST(ProtoTimeTest, DurationsRoundTrip) {
  const absl::Duration d = absl::Milliseconds(1500);
  EXPECT_EQ(ToProto(d).seconds(), 1);
  EXPECT_EQ(ToProto(d).nanos(), 500000000);
  EXPECT_EQ(FromProto(ToProto(d)), d);
  EXPECT_EQ(FromProto(ToProto(-d)), -d);
}

}  // namespace
}  // namespace pettube::time
