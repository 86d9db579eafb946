// GetAssessment through gRPC on hand-built worlds, one rule per test, every
// expected number worked out by hand in the comments (docs/assessment.md).
// The world (sync_world.h): today is 2024-03-01 09:00 CST; cadre1 (rank
// OTHER, unit U1) holds L-h1 to kH1 from 2024-01-31; kH1, kH2 (kV1) and kH3
// (kV2) in county 620102 and kH4 (kV4) in 620103 are IDENTIFIED (need a link)
// since their registration today.
#include <string>

#include "gtest/gtest.h"
#include "tests/server/report_world.h"

namespace fieldsync::testing {
namespace {

class AssessmentTest : public ReportWorld {};

TEST_F(AssessmentTest, VisitCrossingMidnightTouchesTwoDaysAndOverlappingVisitsAreTwoVisits) {
  // 22:00 -> 01:00 touches 10 and 11 February; the second visit lies inside
  // the first: two visits, days merge to 2.
  MustPush(phone(), {VisitAt(phone(), kH1, kV1, Cst(2024, 2, 10, 22), Cst(2024, 2, 11, 1)),
                     VisitAt(phone(), kH1, kV1, Cst(2024, 2, 10, 22, 30), Cst(2024, 2, 10, 23))});
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  const v1::CadreAssessment* c = CadreIn(r, "cadre1");
  ASSERT_NE(c, nullptr) << r.DebugString();
  EXPECT_EQ(c->visits(), 2u);
  EXPECT_EQ(c->days_on_site(), 2u);
  EXPECT_EQ(c->linked_households(), 1u);
  EXPECT_EQ(c->household_quota(), 1u);
  EXPECT_TRUE(c->link_quota_met());
  EXPECT_FALSE(c->visits_met());  // 2 < 4.
  EXPECT_FALSE(c->days_met());    // 2 < 30.
  EXPECT_EQ(r.summary().visits(), 2u);
  EXPECT_EQ(r.summary().cadres(), 1u);
  EXPECT_EQ(r.summary().cadres_meeting_all(), 0u);
}

TEST_F(AssessmentTest, CorrectionMovesAVisitToAnotherDay) {
  v1::Event first = VisitAt(phone(), kH1, kV1, Cst(2024, 2, 10, 10), Cst(2024, 2, 10, 11));
  MustPush(phone(), {first, VisitAt(phone(), kH1, kV1, Cst(2024, 2, 12, 10), Cst(2024, 2, 12, 11))});
  EXPECT_EQ(CadreIn(MustAssess(kCountyA, 2024), "cadre1")->days_on_site(), 2u);
  // The first visit was really on the 12th, in the afternoon: one day.
  MustPush(phone(), {Correct(phone(), kH1, kV1, first.event_id(),
                             std::make_pair(Cst(2024, 2, 12, 14), Cst(2024, 2, 12, 15)), false)});
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  EXPECT_EQ(CadreIn(r, "cadre1")->visits(), 2u);
  EXPECT_EQ(CadreIn(r, "cadre1")->days_on_site(), 1u);
  EXPECT_EQ(r.summary().visits(), 2u);
}

TEST_F(AssessmentTest, CorrectionIntoAnotherYearLeavesThisYear) {
  v1::Event visit = VisitAt(phone(), kH1, kV1, Cst(2024, 2, 10, 10), Cst(2024, 2, 10, 11));
  MustPush(phone(), {visit});
  // Recorded as 2024 by mistake: it was on 31 December 2023, before the link
  // (2024-01-31): it leaves 2024 and does not count for the cadre in 2023.
  MustPush(phone(), {Correct(phone(), kH1, kV1, visit.event_id(),
                             std::make_pair(Cst(2023, 12, 31, 10), Cst(2023, 12, 31, 11)), false)});
  EXPECT_EQ(MustAssess(kCountyA, 2024).summary().visits(), 0u);
  v1::GetAssessmentResponse past = MustAssess(kCountyA, 2023);
  EXPECT_EQ(past.summary().visits(), 1u);
  EXPECT_EQ(past.summary().cadres(), 0u);  // No link in 2023.
}

TEST_F(AssessmentTest, WithdrawnVisitCountsForNothingAndIsNotJudged) {
  v1::Event visit =
      VisitAt(phone(), kH1, kV1, Cst(2024, 2, 10, 10), Cst(2024, 2, 10, 11), std::nullopt);
  MustPush(phone(), {visit});
  EXPECT_EQ(MustEvidence(kCountyA, 2024).counts_by_kind().at(v1::EVIDENCE_FLAG_KIND_NO_FIX), 1u);
  EXPECT_EQ(MustAssess(kCountyA, 2024).summary().flagged_visits(), 1u);
  MustPush(phone(), {Correct(phone(), kH1, kV1, visit.event_id(), std::nullopt, true)});
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  EXPECT_EQ(CadreIn(r, "cadre1")->visits(), 0u);
  EXPECT_EQ(CadreIn(r, "cadre1")->days_on_site(), 0u);
  EXPECT_EQ(CadreIn(r, "cadre1")->flagged_visits(), 0u);
  EXPECT_EQ(r.summary().visits(), 0u);
  EXPECT_EQ(r.summary().flagged_visits(), 0u);
  v1::GetEvidenceReportResponse e = MustEvidence(kCountyA, 2024);
  EXPECT_EQ(e.flags_size(), 0) << e.DebugString();
  EXPECT_TRUE(e.counts_by_kind().empty());
}

TEST_F(AssessmentTest, VisitAfterTheLinkEndedDoesNotCountButIsAVisit) {
  MustPush(phone(), {VisitAt(phone(), kH1, kV1, Cst(2024, 2, 14, 10), Cst(2024, 2, 14, 11)),
                     VisitAt(phone(), kH1, kV1, Cst(2024, 2, 20, 10), Cst(2024, 2, 20, 11))});
  EXPECT_EQ(CadreIn(MustAssess(kCountyA, 2024), "cadre1")->visits(), 2u);
  // The link is ended as of 15 February: the visit of the 20th was made
  // without a link and no longer counts; the one of the 14th still does.
  ASSERT_TRUE(EndOn("L-h1", D(2024, 2, 15)).ok());
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  const v1::CadreAssessment* c = CadreIn(r, "cadre1");
  ASSERT_NE(c, nullptr) << "a link in the year keeps the cadre listed";
  EXPECT_EQ(c->visits(), 1u);
  EXPECT_EQ(c->days_on_site(), 1u);
  EXPECT_EQ(c->linked_households(), 1u);
  EXPECT_EQ(r.summary().visits(), 2u);
  // kH1 opens a gap the day after valid_to: 16 Feb, 14 days before 1 March.
  const v1::CoverageGap* gap = GapOf(r, kH1);
  ASSERT_NE(gap, nullptr) << r.DebugString();
  EXPECT_EQ(gap->open_since().month(), 2);
  EXPECT_EQ(gap->open_since().day(), 16);
  EXPECT_EQ(gap->days_open(), 14u);
  EXPECT_TRUE(gap->in_grace_period());
  EXPECT_EQ(gap->last_link_id(), "L-h1");
  EXPECT_EQ(r.summary().households_covered(), 0u);
}

TEST_F(AssessmentTest, NeverLinkedGapIsInGraceFor30DaysThenOut) {
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  EXPECT_EQ(r.summary().households_requiring_link(), 3u);  // kH1, kH2, kH3.
  EXPECT_EQ(r.summary().households_covered(), 1u);         // kH1.
  // kH2 and kH3 opened today (registered today); same day: by subject id.
  ASSERT_EQ(r.coverage_gaps_size(), 2) << r.DebugString();
  EXPECT_EQ(r.coverage_gaps(0).subject().id(), kH2);
  EXPECT_EQ(r.coverage_gaps(1).subject().id(), kH3);
  EXPECT_EQ(r.coverage_gaps(0).days_open(), 0u);
  EXPECT_EQ(r.coverage_gaps(0).kind(), v1::COVERAGE_GAP_KIND_HOUSEHOLD_WITHOUT_CADRE);
  EXPECT_EQ(r.coverage_gaps(0).status(), v1::HOUSEHOLD_STATUS_IDENTIFIED);
  EXPECT_TRUE(r.coverage_gaps(0).last_link_id().empty());
  harness().clock().Advance(absl::Hours(24 * 30));  // 31 March: 30 days, still in grace.
  v1::GetAssessmentResponse later = MustAssess(kCountyA, 2024);
  const v1::CoverageGap* gap = GapOf(later, kH2);
  ASSERT_NE(gap, nullptr);
  EXPECT_EQ(gap->days_open(), 30u);
  EXPECT_TRUE(gap->in_grace_period());
  harness().clock().Advance(absl::Hours(24));  // 1 April: 31 days, out.
  later = MustAssess(kCountyA, 2024);
  gap = GapOf(later, kH2);
  ASSERT_NE(gap, nullptr);
  EXPECT_EQ(gap->days_open(), 31u);
  EXPECT_FALSE(gap->in_grace_period());
}

TEST_F(AssessmentTest, NeverLinkedPoorVillageIsAGapUntilAUnitLinksIt) {
  ASSERT_TRUE(ImportCsv("code,parent,level,name,poor\n"
                        "620102002001,620102002000,village,三村,1\n")
                  .ok());
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  EXPECT_EQ(r.summary().poor_villages(), 1u);
  EXPECT_EQ(r.summary().villages_covered(), 0u);
  const v1::CoverageGap* gap = GapOf(r, kV3);
  ASSERT_NE(gap, nullptr) << r.DebugString();
  EXPECT_EQ(gap->kind(), v1::COVERAGE_GAP_KIND_VILLAGE_WITHOUT_UNIT);
  EXPECT_EQ(gap->display_name(), "三村");
  EXPECT_EQ(gap->open_since().month(), 3);
  EXPECT_EQ(gap->open_since().day(), 1);
  bool village_plan = false;
  for (const auto& m : r.missing_plans()) {
    village_plan |= m.kind() == v1::PLAN_KIND_VILLAGE && m.subject().id() == kV3;
  }
  EXPECT_TRUE(village_plan) << r.DebugString();

  ASSERT_TRUE(LinkOn("L-u1", "U1", v1::SUBJECT_KIND_VILLAGE, kV3, v1::LINK_ROLE_VILLAGE_UNIT,
                     D(2024, 3, 1), true)
                  .ok());
  r = MustAssess(kCountyA, 2024);
  EXPECT_EQ(r.summary().villages_covered(), 1u);
  EXPECT_EQ(GapOf(r, kV3), nullptr);
  // Now the unit owes its plan for the village too (3 households + village + unit).
  EXPECT_EQ(r.summary().plans_required(), 5u);
  bool unit_plan = false;
  for (const auto& m : r.missing_plans()) {
    if (m.kind() == v1::PLAN_KIND_UNIT) {
      unit_plan = true;
      EXPECT_EQ(m.unit_id(), "U1");
      EXPECT_EQ(m.responsible_user_ids_size(), 0);
    }
  }
  EXPECT_TRUE(unit_plan) << r.DebugString();
}

TEST_F(AssessmentTest, PlanWithNoItemsIsMissingUntilItHasOne) {
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  ASSERT_EQ(r.missing_plans_size(), 3) << r.DebugString();  // kH1, kH2, kH3 by id.
  EXPECT_EQ(r.missing_plans(0).subject().id(), kH1);
  ASSERT_EQ(r.missing_plans(0).responsible_user_ids_size(), 1);
  EXPECT_EQ(r.missing_plans(0).responsible_user_ids(0), "cadre1");
  EXPECT_EQ(r.missing_plans(1).responsible_user_ids_size(), 0);
  MustPush(phone(), {Plan(phone(), kH1, kV1, 2024, 0, 0)});
  r = MustAssess(kCountyA, 2024);
  EXPECT_EQ(r.missing_plans_size(), 3) << "a plan with no items is still missing";
  EXPECT_EQ(r.summary().plans_present(), 0u);
  MustPush(phone(), {Plan(phone(), kH1, kV1, 2024, 1, 1)});
  r = MustAssess(kCountyA, 2024);
  ASSERT_EQ(r.missing_plans_size(), 2);
  EXPECT_EQ(r.missing_plans(0).subject().id(), kH2);
  EXPECT_EQ(r.summary().plans_required(), 3u);
  EXPECT_EQ(r.summary().plans_present(), 1u);
  // A plan for another year does not stand for this one.
  EXPECT_EQ(MustAssess(kCountyA, 2024).summary().plans_present(), 1u);
}

TEST_F(AssessmentTest, LinkQuotaByRankAndItsNearMiss) {
  ASSERT_TRUE(User("dept1", v1::CADRE_RANK_DEPARTMENT_RANK).ok());
  ASSERT_TRUE(LinkOn("L-d1", "dept1", v1::SUBJECT_KIND_HOUSEHOLD, kH1,
                     v1::LINK_ROLE_HOUSEHOLD_HELPER, D(2024, 1, 1)).ok());
  ASSERT_TRUE(LinkOn("L-d2", "dept1", v1::SUBJECT_KIND_HOUSEHOLD, kH2,
                     v1::LINK_ROLE_HOUSEHOLD_HELPER, D(2024, 1, 1)).ok());
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  const v1::CadreAssessment* c = CadreIn(r, "dept1");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->household_quota(), 3u);
  EXPECT_EQ(c->linked_households(), 2u);
  EXPECT_FALSE(c->link_quota_met());  // 2 < 3: one short.
  ASSERT_TRUE(LinkOn("L-d3", "dept1", v1::SUBJECT_KIND_HOUSEHOLD, kH3,
                     v1::LINK_ROLE_HOUSEHOLD_HELPER, D(2024, 1, 1)).ok());
  r = MustAssess(kCountyA, 2024);
  EXPECT_TRUE(CadreIn(r, "dept1")->link_quota_met());
  // A link starting in the future covers nothing yet.
  ASSERT_TRUE(User("dept2", v1::CADRE_RANK_COUNTY_RANK).ok());
  ASSERT_TRUE(LinkOn("L-f1", "dept2", v1::SUBJECT_KIND_HOUSEHOLD, kH2,
                     v1::LINK_ROLE_HOUSEHOLD_HELPER, D(2024, 6, 1)).ok());
  r = MustAssess(kCountyA, 2024);
  EXPECT_EQ(CadreIn(r, "dept2"), nullptr);
  EXPECT_EQ(r.summary().cadres(), 2u);  // cadre1, dept1.
  // Cadres by unit, then name, then id.
  ASSERT_EQ(r.cadres_size(), 2);
  EXPECT_EQ(r.cadres(0).user_id(), "cadre1");
  EXPECT_EQ(r.cadres(1).user_id(), "dept1");
}

class ThresholdTest : public AssessmentTest {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_assessment()->set_min_visits_per_year(2);
    config.mutable_assessment()->set_min_days_on_site(2);
  }
};

TEST_F(ThresholdTest, VisitsAndDaysRequiredAndTheirNearMiss) {
  MustPush(phone(), {VisitAt(phone(), kH1, kV1, Cst(2024, 2, 10, 10), Cst(2024, 2, 10, 11))});
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2024);
  EXPECT_FALSE(CadreIn(r, "cadre1")->visits_met());  // 1 < 2.
  EXPECT_FALSE(CadreIn(r, "cadre1")->days_met());
  EXPECT_EQ(CadreIn(r, "cadre1")->visits_required(), 2u);
  EXPECT_EQ(r.summary().cadres_meeting_all(), 0u);
  MustPush(phone(), {VisitAt(phone(), kH1, kV1, Cst(2024, 2, 11, 10), Cst(2024, 2, 11, 11))});
  r = MustAssess(kCountyA, 2024);
  EXPECT_TRUE(CadreIn(r, "cadre1")->visits_met());
  EXPECT_TRUE(CadreIn(r, "cadre1")->days_met());
  EXPECT_TRUE(CadreIn(r, "cadre1")->quota_met());
  EXPECT_EQ(r.summary().cadres_meeting_all(), 1u);
  // The province and the city see the same cadre once.
  EXPECT_EQ(MustAssess("62", 2024).summary().cadres_meeting_all(), 1u);
  EXPECT_EQ(MustAssess("6201", 2024).summary().cadres(), 1u);
  // County B has none of it.
  EXPECT_EQ(MustAssess("620103", 2024).summary().cadres(), 0u);
}

TEST_F(AssessmentTest, PagesWalkCadresGapsAndPlansAsOneSequence) {
  v1::GetAssessmentResponse whole = MustAssess("62", 2024);
  const int total = whole.cadres_size() + whole.coverage_gaps_size() + whole.missing_plans_size();
  ASSERT_GT(total, 3);
  std::string token;
  int seen = 0, pages = 0;
  std::vector<std::string> order;
  do {
    v1::GetAssessmentResponse page;
    ASSERT_TRUE(Assess(hq_token(), "62", 2024, &page, 1, token).ok());
    EXPECT_EQ(page.summary().SerializeAsString(), whole.summary().SerializeAsString());
    const int n = page.cadres_size() + page.coverage_gaps_size() + page.missing_plans_size();
    EXPECT_EQ(n, 1);
    for (const auto& c : page.cadres()) order.push_back("c" + c.user_id());
    for (const auto& g : page.coverage_gaps()) order.push_back("g" + g.subject().id());
    for (const auto& m : page.missing_plans()) order.push_back("m" + m.subject().id());
    seen += n;
    token = page.next_page_token();
    ASSERT_LT(++pages, 100);
  } while (!token.empty());
  EXPECT_EQ(seen, total);
  std::vector<std::string> expected;
  for (const auto& c : whole.cadres()) expected.push_back("c" + c.user_id());
  for (const auto& g : whole.coverage_gaps()) expected.push_back("g" + g.subject().id());
  for (const auto& m : whole.missing_plans()) expected.push_back("m" + m.subject().id());
  EXPECT_EQ(order, expected);
}

TEST_F(AssessmentTest, PastYearIsAsOfItsLastDay) {
  v1::GetAssessmentResponse r = MustAssess(kCountyA, 2023);
  EXPECT_EQ(r.summary().households_requiring_link(), 0u);  // Registered in 2024.
  EXPECT_EQ(r.coverage_gaps_size(), 0);
  EXPECT_EQ(r.cadres_size(), 0);
}

}  // namespace
}  // namespace fieldsync::testing
