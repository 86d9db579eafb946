// A device whose link changes receives the additions and drops the removals.
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/clients/field_world.h"

namespace fieldsync::testing {
namespace {

class ScopeChangeTest : public FieldWorld {};

std::string DaysFromNow(int days) {
  return absl::FormatTime("%Y-%m-%d", absl::Now() + absl::Hours(24) * days,
                          absl::FixedTimeZone(8 * 3600));
}

TEST_F(ScopeChangeTest, LinkChangeBringsTheNewHouseholdAndDropsTheOld) {
  Link("L1", "cadre1", kH1, DaysFromNow(-7));
  Must("phone1", {"sync"});
  CtlRun before = Must("phone1", {"--json", "household", "list"});
  EXPECT_NE(before.out.find(kH1), std::string::npos) << before.out;
  EXPECT_EQ(before.out.find(kH2), std::string::npos) << before.out;

  // cadre1 takes H2 and stops helping H1 (their link ended yesterday).
  Link("L2", "cadre1", kH2, DaysFromNow(-1));
  CtlRun ended = Admin(
      {"admin", "link", "end", "L1", "--reason", "entered_in_error", "--to", DaysFromNow(-1)});
  ASSERT_EQ(ended.exit_code, 0) << ended.err;

  CtlRun synced = Must("phone1", {"--json", "sync"});
  // Removed incrementally, or by a reset when the server no longer knows the
  // old scope: either way H1 is gone below.
  EXPECT_TRUE(JsonInt(synced.out, "removed_subjects") >= 1 ||
              JsonField(synced.out, "reset") == "true")
      << synced.out;
  CtlRun after = Must("phone1", {"--json", "household", "list"});
  EXPECT_NE(after.out.find(kH2), std::string::npos) << after.out;
  EXPECT_EQ(after.out.find(kH1), std::string::npos) << after.out;
  // A visit to the household that left the scope is refused locally with a
  // message that says what to do, not queued for a certain rejection.
  CtlRun visit = Must("phone1",
                      {"visit", "record", "--household", kH1, "--start",
                       "2024-03-01T09:00:00+08:00", "--end", "2024-03-01T10:00:00+08:00"},
                      1);
  EXPECT_NE(visit.err.find("not in local state"), std::string::npos) << visit.err;
}

}  // namespace
}  // namespace fieldsync::testing
