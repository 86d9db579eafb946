#include "base/time.h"

namespace fieldsync::base {

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  google::protobuf::Timestamp out;
  // ToUnixSeconds rounds toward the past, so the remainder is never negative
  // (ToUnixNanos would also overflow after the year 2262).
  const int64_t seconds = absl::ToUnixSeconds(time);
  out.set_seconds(seconds);
  out.set_nanos(
      static_cast<int32_t>((time - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  return out;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixSeconds(timestamp.seconds()) + absl::Nanoseconds(timestamp.nanos());
}

bool IsValidTimestamp(const google::protobuf::Timestamp& timestamp) {
  return timestamp.seconds() >= kTimestampMinSeconds &&
         timestamp.seconds() <= kTimestampMaxSeconds && timestamp.nanos() >= 0 &&
         timestamp.nanos() <= 999999999;
}

bool IsValidCalendarDate(int year, int month, int day, int min_year, int max_year) {
  if (year < min_year || year > max_year || month < 1 || month > 12 || day < 1) return false;
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  const int days = (month == 2 && leap) ? 29 : kDays[month - 1];
  return day <= days;
}

}  // namespace fieldsync::base
