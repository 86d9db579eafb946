// Regression (session 5): a visit's cost at commit must not grow with its
// cadre's history. The cadre record used to hold every visit of the cadre,
// so each visit read and rewrote them all: the 1,500th visit of one cadre
// read ~150 kB, and the server's single committer slowed for every device
// (push_bench: 8 cadres, ~50,000 visits each). Now the visits are records of
// their own and a visit reads its neighbours only.
#include "tests/domain/assessment_world.h"

namespace fieldsync::domain::assessment {
namespace {

TEST(AssessmentCostTest, AVisitReadsTheSameWhateverTheCadresHistory) {
  World w;
  v1::Event areas;
  *areas.mutable_subject() = Ref(v1::SUBJECT_KIND_AREA, "620000000000");
  areas.set_area_code("620000000000");
  v1::Area* area = areas.mutable_area_imported()->add_areas();
  area->set_code("620102001001");
  area->set_level(v1::AREA_LEVEL_VILLAGE);
  area->set_name("村");
  ASSERT_TRUE(w.Apply(areas, "admin", v1::ROLE_ADMIN, At(1, 1, 9)));
  v1::Event user;
  *user.mutable_subject() = Ref(v1::SUBJECT_KIND_USER, "c0");
  user.mutable_user_upserted()->mutable_user()->set_id("c0");
  user.mutable_user_upserted()->mutable_user()->set_role(v1::ROLE_CADRE);
  ASSERT_TRUE(w.Apply(user, "admin", v1::ROLE_ADMIN, At(1, 1, 9)));
  const std::string household = "11111111-1111-4111-8111-000000000010";
  v1::Event reg;
  *reg.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, household);
  reg.set_area_code("620102001001");
  reg.set_event_id("reg");
  reg.mutable_household_registered()->set_household_number("N1");
  reg.mutable_household_registered()->set_head_name("戶");
  reg.mutable_household_registered()->set_head_id_number("110101199001011237");
  reg.mutable_household_registered()->set_initial_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
  reg.mutable_household_registered()->mutable_location()->set_lat(36.0);
  reg.mutable_household_registered()->mutable_location()->set_lng(103.8);
  ASSERT_TRUE(w.Apply(reg, "town", v1::ROLE_TOWNSHIP_STAFF, At(1, 1, 10)));
  v1::Event link;
  *link.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, household);
  link.set_area_code("620102001001");
  link.mutable_link_started()->set_link_id("L1");
  link.mutable_link_started()->set_cadre_id("c0");
  link.mutable_link_started()->set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
  *link.mutable_link_started()->mutable_valid_from() = DateOf(At(1, 1, 9));
  ASSERT_TRUE(w.Apply(link, "county", v1::ROLE_COUNTY_STAFF, At(1, 1, 9)));

  int n = 0;
  // Visits on the same days of the year (as a cadre's phone pushes them),
  // so the counter buckets they touch are the same ones each time.
  auto visit = [&] {
    v1::Event e;
    e.set_event_id(absl::StrCat("v", n));
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, household);
    e.set_area_code("620102001001");
    const absl::Time start = At(3, 1 + n % 4, 8) + absl::Seconds(n);
    *e.mutable_visit_recorded()->mutable_start_time() = Ts(start);
    *e.mutable_visit_recorded()->mutable_end_time() = Ts(start + absl::Minutes(30));
    e.mutable_visit_recorded()->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
    e.mutable_location()->set_lat(36.0);
    e.mutable_location()->set_lng(103.8);
    ++n;
    const uint64_t before = w.store.read_bytes;
    EXPECT_TRUE(w.Apply(e, "c0", v1::ROLE_CADRE, start + absl::Hours(1)));
    return w.store.read_bytes - before;
  };
  for (int i = 0; i < 20; ++i) visit();
  const uint64_t early = visit();
  for (int i = 0; i < 1500; ++i) visit();
  const uint64_t late = visit();
  EXPECT_GT(early, 0u);
  // The same records of the same sizes (the cadre, the household, two
  // neighbours, four counter buckets), give or take a few bytes of numbers.
  EXPECT_LE(late, early + 256) << "early " << early << " bytes, late " << late << " bytes";
  CheckAgainstRecords(w.store.data(), w.policy.options().assessment);
}

}  // namespace
}  // namespace fieldsync::domain::assessment
