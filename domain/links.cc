#include "domain/links.h"

#include "absl/time/civil_time.h"

namespace fieldsync::domain {

v1::Date DateOf(absl::Time time) {
  static const absl::TimeZone* cst = new absl::TimeZone(absl::FixedTimeZone(8 * 60 * 60));
  const absl::CivilDay day = absl::ToCivilDay(time, *cst);
  v1::Date date;
  date.set_year(static_cast<int32_t>(day.year()));
  date.set_month(day.month());
  date.set_day(day.day());
  return date;
}

int DateNumber(const v1::Date& date) {
  return date.year() * 10000 + date.month() * 100 + date.day();
}

bool LinkActive(const v1::Link& link, const v1::Date& today) {
  if (link.ended_offset() == 0 && !link.has_valid_to()) return true;
  return DateNumber(link.valid_to()) >= DateNumber(today);
}

}  // namespace fieldsync::domain
