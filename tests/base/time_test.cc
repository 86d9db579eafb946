#include "base/time.h"

#include "gtest/gtest.h"

namespace fieldsync::base {
namespace {

google::protobuf::Timestamp Make(int64_t seconds, int32_t nanos) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

TEST(TimestampTest, RoundTripsToTheNanosecond) {
  const absl::Time t = absl::FromUnixNanos(1764547200123456789);
  const google::protobuf::Timestamp ts = ToTimestamp(t);
  EXPECT_EQ(ts.seconds(), 1764547200);
  EXPECT_EQ(ts.nanos(), 123456789);
  EXPECT_EQ(FromTimestamp(ts), t);
}

TEST(TimestampTest, TheEpochIsZero) {
  const google::protobuf::Timestamp ts = ToTimestamp(absl::UnixEpoch());
  EXPECT_EQ(ts.seconds(), 0);
  EXPECT_EQ(ts.nanos(), 0);
}

TEST(TimestampTest, BeforeTheEpochNanosStayPositive) {
  const google::protobuf::Timestamp ts = ToTimestamp(absl::FromUnixNanos(-1));
  EXPECT_EQ(ts.seconds(), -1);
  EXPECT_EQ(ts.nanos(), 999999999);
  EXPECT_EQ(FromTimestamp(ts), absl::FromUnixNanos(-1));
}

TEST(TimestampTest, TheLimitsOfTheProtobufRangeRoundTrip) {
  // Past the year 2262, where a conversion through int64 nanoseconds overflows.
  const absl::Time last =
      absl::FromUnixSeconds(kTimestampMaxSeconds) + absl::Nanoseconds(999999999);
  EXPECT_TRUE(IsValidTimestamp(ToTimestamp(last)));
  EXPECT_EQ(FromTimestamp(ToTimestamp(last)), last);
  const absl::Time first = absl::FromUnixSeconds(kTimestampMinSeconds);
  EXPECT_TRUE(IsValidTimestamp(ToTimestamp(first)));
  EXPECT_EQ(FromTimestamp(ToTimestamp(first)), first);
}

TEST(TimestampTest, OutsideTheRangeIsNotValid) {
  EXPECT_FALSE(IsValidTimestamp(ToTimestamp(absl::InfiniteFuture())));
  EXPECT_FALSE(IsValidTimestamp(ToTimestamp(absl::InfinitePast())));
  EXPECT_FALSE(IsValidTimestamp(Make(kTimestampMaxSeconds + 1, 0)));
  EXPECT_FALSE(IsValidTimestamp(Make(kTimestampMinSeconds - 1, 0)));
  EXPECT_FALSE(IsValidTimestamp(Make(0, -1)));
  EXPECT_FALSE(IsValidTimestamp(Make(0, 1000000000)));
  EXPECT_TRUE(IsValidTimestamp(Make(0, 999999999)));
}

TEST(CalendarDateTest, LeapYearsFollowTheGregorianRule) {
  EXPECT_TRUE(IsValidCalendarDate(2024, 2, 29, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(2023, 2, 29, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(1900, 2, 29, 1900, 2100));  // divisible by 100
  EXPECT_TRUE(IsValidCalendarDate(2000, 2, 29, 1900, 2100));   // divisible by 400
}

TEST(CalendarDateTest, MonthLengthsAndBoundsAreChecked) {
  EXPECT_TRUE(IsValidCalendarDate(2026, 12, 31, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(2026, 4, 31, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(2026, 13, 1, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(2026, 0, 1, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(2026, 1, 0, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(2026, 1, -1, 1900, 2100));
}

TEST(CalendarDateTest, TheYearRangeIsTheCallers) {
  EXPECT_TRUE(IsValidCalendarDate(1900, 1, 1, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(1899, 12, 31, 1900, 2100));
  EXPECT_TRUE(IsValidCalendarDate(2100, 12, 31, 1900, 2100));
  EXPECT_FALSE(IsValidCalendarDate(2101, 1, 1, 1900, 2100));
  EXPECT_TRUE(IsValidCalendarDate(2101, 1, 1, 1900, 9999));
}

}  // namespace
}  // namespace fieldsync::base
