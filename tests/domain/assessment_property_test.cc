// Property: the assessment aggregates kept at commit equal a from-scratch
// recomputation over the log, for random worlds. Events are folded through
// ShuanglianPolicy::Merge (the commit path) over an in-memory projection
// space; then (1) every stored subject contribution equals the one recomputed
// from the final records, the counters equal the sum of the contributions of
// every subject and cadre, and every index entry belongs to one, and (2) the
// summary read from the counters equals figures counted naively from the
// event list itself.
#include "tests/domain/assessment_world.h"

namespace fieldsync::domain::assessment {
namespace {

TEST(AssessmentPropertyTest, AggregatesAtCommitEqualARecomputationOverTheLog) {
  v1::AssessmentSummary totals;
  uint32_t visits = 0, covered = 0, flagged = 0, cadres = 0;
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937 rng(seed);
    World w;
    BuildRandomWorld(w, rng);
    const AssessmentOptions options = w.policy.options().assessment;
    CheckAgainstRecords(w.store.data(), options);
    for (int month : {1, 3, 6, 9, 12}) {
      CheckAgainstLog(w, options, DayOfDate(2024, month, month == 12 ? 31 : 15));
    }
    // The next year: the year counters (visits) start again from zero.
    CheckAgainstLog(w, options, DayOfDate(2025, 1, 1));
    CheckAgainstLog(w, options, DayOfDate(2025, 2, 10));
    // The worlds are not empty: the figures compared are real ones.
    absl::StatusOr<v1::AssessmentSummary> year = Summary(w.store, "62", LastDay(2024));
    ASSERT_TRUE(year.ok());
    totals.MergeFrom(*year);
    visits += year->visits();
    covered += year->households_covered();
    flagged += year->flagged_visits();
    cadres += year->cadres();
    if (HasFailure()) break;
  }
  EXPECT_GT(visits, 200u);
  EXPECT_GT(covered, 20u);
  EXPECT_GT(flagged, 20u);
  EXPECT_GT(cadres, 40u);
}

}  // namespace
}  // namespace fieldsync::domain::assessment
