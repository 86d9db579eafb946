// Issue 9 point 7: the area codes of events exist in the imported tree at the level the body
// needs (docs/sync.md "Area codes"): a new household in an imported village, a VILLAGE subject
// an imported village, an AREA subject an imported area other than a village, a county link's
// target a county. Every miss is REJECTION_CODE_UNKNOWN_REFERENCE on field area_code, naming
// the code; the rest of the batch is judged as usual.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "base/time.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

// Event area codes are 12 digits (SyncWorld imports county A as 620102000000).
constexpr char kCounty[] = "620102000000";
constexpr char kTownship[] = "620102001000";
constexpr char kUnimportedVillage[] = "620102001099";   // In town1's township; never imported.
constexpr char kUnimportedTownship[] = "620102003000";  // In county A; never imported.

v1::SubjectRef Ref(v1::SubjectKind kind, const std::string& id) {
  v1::SubjectRef ref;
  ref.set_kind(kind);
  ref.set_id(id);
  return ref;
}

class AreaExistsTest : public SyncWorld {
 protected:
  // Expects `result` to be UNKNOWN_REFERENCE on area_code naming `code`.
  static void ExpectUnknownArea(const v1::PushResult& result, const std::string& code) {
    ASSERT_TRUE(result.has_rejected()) << OutcomeOf(result) << " " << result.ShortDebugString();
    EXPECT_EQ(result.rejected().code(), v1::REJECTION_CODE_UNKNOWN_REFERENCE)
        << result.ShortDebugString();
    EXPECT_EQ(result.rejected().field(), "area_code");
    EXPECT_TRUE(absl::StrContains(result.rejected().message(), code)) << result.rejected().message();
  }

  v1::PushResult PushOne(TestDevice& device, const v1::Event& event) {
    v1::PushResponse response = MustPush(device, {event});
    EXPECT_EQ(response.results_size(), 1);
    return response.results_size() == 1 ? response.results(0) : v1::PushResult();
  }

  v1::Event Visit(TestDevice& device, const v1::SubjectRef& subject, const std::string& area) {
    return device.Make(subject, area, [&](v1::Event& e) {
      v1::VisitRecorded* v = e.mutable_visit_recorded();
      *v->mutable_start_time() = base::ToTimestamp(harness().clock().Now() - absl::Hours(1));
      *v->mutable_end_time() = base::ToTimestamp(harness().clock().Now());
      v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
      v->set_notes("走訪");
    });
  }

  // A county-leader link of cadre1 to the AREA `code`, pushed by county staff.
  v1::Event CountyLink(const std::string& code) {
    return county().Make(Ref(v1::SUBJECT_KIND_AREA, code), code, [&](v1::Event& e) {
      v1::LinkStarted* l = e.mutable_link_started();
      l->set_link_id(RandomUuid());
      l->set_cadre_id("cadre1");
      l->set_role(v1::LINK_ROLE_COUNTY_LEADER);
      l->mutable_valid_from()->set_year(2024);
      l->mutable_valid_from()->set_month(1);
      l->mutable_valid_from()->set_day(1);
    });
  }
};

TEST_F(AreaExistsTest, AHouseholdInAVillageNobodyImportedIsAnUnknownReferenceNamingTheCode) {
  ExpectUnknownArea(PushOne(tablet(), tablet().Register(RandomUuid(), kUnimportedVillage, "N-91")),
                    kUnimportedVillage);
}

TEST_F(AreaExistsTest, AHouseholdRegisteredAtATownshipCodeIsAnUnknownReference) {
  ExpectUnknownArea(PushOne(tablet(), tablet().Register(RandomUuid(), kTownship, "N-92")),
                    kTownship);
}

TEST_F(AreaExistsTest, AVisitToAVillageNobodyImportedIsAnUnknownReferenceNotAnUnknownSubject) {
  ExpectUnknownArea(
      PushOne(tablet(), Visit(tablet(), Ref(v1::SUBJECT_KIND_VILLAGE, kUnimportedVillage),
                              kUnimportedVillage)),
      kUnimportedVillage);
}

TEST_F(AreaExistsTest, AVillageSubjectThatIsATownshipIsAnUnknownReference) {
  ExpectUnknownArea(PushOne(tablet(), Visit(tablet(), Ref(v1::SUBJECT_KIND_VILLAGE, kTownship), kTownship)),
                    kTownship);
}

TEST_F(AreaExistsTest, AVisitToAnImportedVillageIsAccepted) {
  const v1::PushResult result = PushOne(tablet(), Visit(tablet(), Ref(v1::SUBJECT_KIND_VILLAGE, kV1), kV1));
  EXPECT_TRUE(result.has_accepted()) << result.ShortDebugString();
}

TEST_F(AreaExistsTest, ACountyLinkToACountyIsAccepted) {
  const v1::PushResult result = PushOne(county(), CountyLink(kCounty));
  EXPECT_TRUE(result.has_accepted()) << result.ShortDebugString();
}

TEST_F(AreaExistsTest, ACountyLinkToATownshipIsAnUnknownReferenceNamingTheLevel) {
  const v1::PushResult result = PushOne(county(), CountyLink(kTownship));
  ExpectUnknownArea(result, kTownship);
  EXPECT_TRUE(absl::StrContains(result.rejected().message(), "county"))
      << result.rejected().message();
}

TEST_F(AreaExistsTest, AnAreaSubjectThatIsAVillageIsAnUnknownReference) {
  ExpectUnknownArea(PushOne(county(), CountyLink(kV1)), kV1);
}

TEST_F(AreaExistsTest, AnAreaSubjectNobodyImportedIsAnUnknownReference) {
  ExpectUnknownArea(PushOne(county(), CountyLink(kUnimportedTownship)), kUnimportedTownship);
}

TEST_F(AreaExistsTest, AnUnknownAreaRejectsOnlyItsEventAndTheBatchGoesOn) {
  v1::PushResponse response =
      MustPush(tablet(), {Visit(tablet(), Ref(v1::SUBJECT_KIND_VILLAGE, kUnimportedVillage),
                                kUnimportedVillage),
                          Visit(tablet(), Ref(v1::SUBJECT_KIND_VILLAGE, kV1), kV1)});
  ASSERT_EQ(response.results_size(), 2);
  ExpectUnknownArea(response.results(0), kUnimportedVillage);
  EXPECT_TRUE(response.results(1).has_accepted()) << response.results(1).ShortDebugString();
}

}  // namespace
}  // namespace fieldsync::testing
