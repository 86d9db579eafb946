// Dates and link activity in China Standard Time (UTC+8), the civil dates
// links and measures are written in. Pure; thread-safe.
#pragma once

#include "absl/time/time.h"
#include "fieldsync/v1/common.pb.h"
#include "fieldsync/v1/state.pb.h"

namespace fieldsync::domain {

// The civil date of an instant in China Standard Time.
v1::Date DateOf(absl::Time time);
// yyyymmdd as a number, for comparisons.
int DateNumber(const v1::Date& date);
// A link is active while not ended, or while its valid_to is `today` or later.
bool LinkActive(const v1::Link& link, const v1::Date& today);

}  // namespace fieldsync::domain
