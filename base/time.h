// absl::Time <-> google.protobuf.Timestamp, and calendar-date checks. The
// only copies in the tree (the server, the sync engine, the domain and the
// benchmarks convert through these).
#pragma once

#include "absl/time/time.h"
#include "google/protobuf/timestamp.pb.h"

namespace fieldsync::base {

// The protobuf Timestamp range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
inline constexpr int64_t kTimestampMinSeconds = -62135596800LL;
inline constexpr int64_t kTimestampMaxSeconds = 253402300799LL;

// `time` as a Timestamp, exact to the nanosecond, with 0 <= nanos < 1e9
// (a time before 1970 with a fraction has seconds rounded down). Times past
// the Timestamp range (absl::InfiniteFuture()...) give seconds outside it:
// check with IsValidTimestamp before sending one.
google::protobuf::Timestamp ToTimestamp(absl::Time time);

// The instant of `timestamp`; nanos are added as they are (no range check).
absl::Time FromTimestamp(const google::protobuf::Timestamp& timestamp);

// True if `timestamp` lies in the protobuf range with 0 <= nanos <= 999999999.
bool IsValidTimestamp(const google::protobuf::Timestamp& timestamp);

// True if year-month-day is a real date of the proleptic Gregorian calendar
// (29 February only in leap years) and min_year <= year <= max_year. The
// year range is the caller's policy.
bool IsValidCalendarDate(int year, int month, int day, int min_year, int max_year);

}  // namespace fieldsync::base
