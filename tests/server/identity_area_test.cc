// Identities and areas in pushed payloads, end to end through gRPC (issue 7,
// items 6 and 7): an event is judged on where its subject really lives, never
// on the area_code it claims, and the identities a payload names
// (InspectionRecorded.inspector_user_id, FeedbackFiled.from_unit_id) must be
// the author's own.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

// Unit UB and cadre cadreB live in county B (620103); U1 and cadre1 in
// township A1 (620102001), where town1 works.
constexpr char kUnitAreaA1[] = "620102001000";
constexpr char kUnitAreaB[] = "620103001000";

class IdentityAreaTest : public SyncWorld {
 protected:
  void SetUp() override {
    SyncWorld::SetUp();
    if (HasFatalFailure()) return;
    v1::UpsertUnitRequest unit;
    unit.mutable_unit()->set_id("UB");
    unit.mutable_unit()->set_name("unit UB");
    unit.mutable_unit()->set_area_code(kUnitAreaB);
    v1::UpsertUnitResponse done;
    auto context = ServiceHarness::Context(admin_token());
    grpc::Status status = admin().UpsertUnit(context.get(), unit, &done);
    ASSERT_TRUE(status.ok()) << status.error_message();
    v1::User cadre;
    cadre.set_id("cadreB");
    cadre.set_name("cadreB");
    cadre.set_role(v1::ROLE_CADRE);
    cadre.set_rank(v1::CADRE_RANK_OTHER);
    cadre.set_unit_id("UB");
    auto upserted = UpsertUser(*harness().channel(), admin_token(), cadre);
    ASSERT_TRUE(upserted.ok()) << upserted.status();
    // cadre1 files feedback about village V2.
    ASSERT_TRUE(
        StartLink("L-v2", "cadre1", v1::SUBJECT_KIND_VILLAGE, kV2, v1::LINK_ROLE_VILLAGE_CADRE)
            .ok());
  }

  static v1::SubjectRef Subject(v1::SubjectKind kind, const std::string& id) {
    v1::SubjectRef ref;
    ref.set_kind(kind);
    ref.set_id(id);
    return ref;
  }

  static v1::Event Inspect(TestDevice& device, const v1::SubjectRef& subject,
                           const std::string& area, const std::string& inspector) {
    return device.Make(subject, area, [&](v1::Event& e) {
      v1::InspectionRecorded* i = e.mutable_inspection_recorded();
      i->set_inspector_user_id(inspector);
      i->set_inspector_name("督查組");
      i->set_findings("入戶核實幫扶記錄");
      i->set_result(v1::INSPECTION_RESULT_PASSED);
    });
  }

  static v1::Event Feedback(TestDevice& device, const std::string& village,
                            const std::string& unit) {
    return device.Make(Subject(v1::SUBJECT_KIND_VILLAGE, village), village, [&](v1::Event& e) {
      v1::FeedbackFiled* f = e.mutable_feedback_filed();
      f->set_from_unit_id(unit);
      f->set_kind(v1::FEEDBACK_KIND_PROBLEM);
      f->set_title("村道硬化");
      f->set_content("主幹道未硬化，雨季出行困難。");
    });
  }

  // The single result of pushing `event` as `device`.
  v1::PushResult PushOne(const TestDevice& device, const v1::Event& event) {
    v1::PushResponse response;
    grpc::Status status = Push(device, {event}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (response.results_size() != 1) {
      ADD_FAILURE() << response.ShortDebugString();
      return {};
    }
    return response.results(0);
  }

  // The events of `subject`'s history, read with `token`.
  std::vector<sync::LoggedEvent> History(const std::string& token, const v1::SubjectRef& subject) {
    v1::GetHistoryRequest request;
    *request.mutable_subject() = subject;
    v1::GetHistoryResponse response;
    auto context = ServiceHarness::Context(token);
    grpc::Status status = query().GetHistory(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return Decoded(response.events());
  }
};

int Inspections(const std::vector<sync::LoggedEvent>& events) {
  int n = 0;
  for (const sync::LoggedEvent& event : events) n += event.event().has_inspection_recorded();
  return n;
}

// --- Item 6: identities in payloads -------------------------------------------

TEST_F(IdentityAreaTest, AnInspectionNamingAnotherUserAsInspectorIsRejected) {
  const v1::PushResult result =
      PushOne(tablet(), Inspect(tablet(), Household(kH1), kV1, "county1"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_PERMISSION_DENIED") << result.ShortDebugString();
  EXPECT_EQ(result.rejected().field(), "inspection_recorded.inspector_user_id");
  EXPECT_TRUE(absl::StrContains(result.rejected().message(), "county1"))
      << result.rejected().message();
  EXPECT_TRUE(History(county().token(), Household(kH1)).size() > 0);
  for (const sync::LoggedEvent& event : History(county().token(), Household(kH1))) {
    EXPECT_FALSE(event.event().has_inspection_recorded()) << event.event().ShortDebugString();
  }
}

TEST_F(IdentityAreaTest, AnInspectionByTheInspectorThemselvesOrWithoutAnAccountIsAccepted) {
  EXPECT_EQ(OutcomeOf(PushOne(tablet(), Inspect(tablet(), Household(kH1), kV1, "town1"))),
            "accepted");
  // An inspector without an account: the log's actor says who recorded it.
  EXPECT_EQ(OutcomeOf(PushOne(tablet(), Inspect(tablet(), Household(kH1), kV1, ""))), "accepted");
}

TEST_F(IdentityAreaTest, FeedbackFromAnotherCountysUnitIsRejected) {
  const v1::PushResult result = PushOne(phone(), Feedback(phone(), kV2, "UB"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_PERMISSION_DENIED") << result.ShortDebugString();
  EXPECT_EQ(result.rejected().field(), "feedback_filed.from_unit_id");
  EXPECT_TRUE(absl::StrContains(result.rejected().message(), "UB")) << result.rejected().message();
}

TEST_F(IdentityAreaTest, FeedbackFromAUnitThatDoesNotExistIsRejected) {
  const v1::PushResult result = PushOne(phone(), Feedback(phone(), kV2, "NO-SUCH-UNIT"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_PERMISSION_DENIED") << result.ShortDebugString();
  EXPECT_EQ(result.rejected().field(), "feedback_filed.from_unit_id");
}

TEST_F(IdentityAreaTest, FeedbackFromAUserWithoutAUnitIsRejected) {
  // town1 has no unit: there is no unit it could speak for.
  const v1::PushResult result = PushOne(tablet(), Feedback(tablet(), kV2, "U1"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_PERMISSION_DENIED") << result.ShortDebugString();
  EXPECT_EQ(result.rejected().field(), "feedback_filed.from_unit_id");
}

TEST_F(IdentityAreaTest, FeedbackFromTheAuthorsOwnUnitIsAccepted) {
  EXPECT_EQ(OutcomeOf(PushOne(phone(), Feedback(phone(), kV2, "U1"))), "accepted");
}

TEST_F(IdentityAreaTest, ARelayedFeedbackIsCheckedAgainstItsSignersUnit) {
  // The tablet (town1, no unit) relays the phone's events: the unit that
  // counts is the signer's (cadre1: U1), not the relay's.
  v1::Event own = Feedback(phone(), kV2, "U1");
  v1::Event foreign = Feedback(phone(), kV2, "UB");
  v1::PushResponse response;
  ASSERT_TRUE(Push(tablet(), {own, foreign}, &response).ok());
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(OutcomeOf(response.results(0)), "accepted") << response.ShortDebugString();
  EXPECT_EQ(OutcomeOf(response.results(1)), "REJECTION_CODE_PERMISSION_DENIED");
  EXPECT_EQ(response.results(1).rejected().field(), "feedback_filed.from_unit_id");
}

// --- Item 7: the subject's real area, never the claimed one --------------------

TEST_F(IdentityAreaTest, TownshipStaffCannotInspectAnotherCountysCadreByClaimingTheirVillage) {
  const v1::SubjectRef cadre = Subject(v1::SUBJECT_KIND_CADRE, "cadreB");
  const v1::PushResult result = PushOne(tablet(), Inspect(tablet(), cadre, kV1, "town1"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_OUT_OF_SCOPE") << result.ShortDebugString();
  // The rejection does not tell the outsider where the cadre lives.
  EXPECT_FALSE(absl::StrContains(result.rejected().message(), kUnitAreaB))
      << result.rejected().message();
  EXPECT_EQ(Inspections(History(county_b().token(), cadre)), 0);
}

TEST_F(IdentityAreaTest, TownshipStaffCannotInspectAnotherCountysUnitByClaimingTheirVillage) {
  const v1::SubjectRef unit = Subject(v1::SUBJECT_KIND_UNIT, "UB");
  const v1::PushResult result = PushOne(tablet(), Inspect(tablet(), unit, kV1, "town1"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_OUT_OF_SCOPE") << result.ShortDebugString();
  EXPECT_EQ(Inspections(History(county_b().token(), unit)), 0);
}

TEST_F(IdentityAreaTest, InspectingAUnitThatDoesNotExistIsRejected) {
  const v1::PushResult result = PushOne(
      tablet(), Inspect(tablet(), Subject(v1::SUBJECT_KIND_UNIT, "NO-SUCH-UNIT"), kV1, "town1"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_UNKNOWN_SUBJECT") << result.ShortDebugString();
  EXPECT_EQ(result.rejected().field(), "subject");
}

TEST_F(IdentityAreaTest, InspectingACadreAndAUnitOfTheOwnTownshipAtTheirRealAreaIsAccepted) {
  const v1::SubjectRef cadre = Subject(v1::SUBJECT_KIND_CADRE, "cadre1");
  const v1::SubjectRef unit = Subject(v1::SUBJECT_KIND_UNIT, "U1");
  EXPECT_EQ(OutcomeOf(PushOne(tablet(), Inspect(tablet(), cadre, kUnitAreaA1, "town1"))),
            "accepted");
  EXPECT_EQ(OutcomeOf(PushOne(tablet(), Inspect(tablet(), unit, kUnitAreaA1, "town1"))),
            "accepted");
  EXPECT_EQ(Inspections(History(county().token(), cadre)), 1);
  EXPECT_EQ(Inspections(History(county().token(), unit)), 1);
}

TEST_F(IdentityAreaTest, AClaimedAreaThatIsNotTheSubjectsIsRejectedNamingBoth) {
  // In scope, but claimed in the wrong village of the same township.
  const v1::PushResult result =
      PushOne(tablet(), Inspect(tablet(), Subject(v1::SUBJECT_KIND_CADRE, "cadre1"), kV1, "town1"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_SUBJECT_MISMATCH") << result.ShortDebugString();
  EXPECT_EQ(result.rejected().field(), "area_code");
  EXPECT_TRUE(absl::StrContains(result.rejected().message(), kV1)) << result.rejected().message();
  EXPECT_TRUE(absl::StrContains(result.rejected().message(), kUnitAreaA1))
      << result.rejected().message();
}

TEST_F(IdentityAreaTest, AHouseholdEventClaimingTheActorsOwnAreaForAnotherCountysHouseholdIsOut) {
  // kH4 lives in county B's kV4; the tablet claims its own kV1.
  const v1::PushResult result = PushOne(tablet(), tablet().Visit(kH4, kV1));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_OUT_OF_SCOPE") << result.ShortDebugString();
  EXPECT_FALSE(absl::StrContains(result.rejected().message(), kV4)) << result.rejected().message();
  for (const sync::LoggedEvent& event : History(county_b().token(), Household(kH4))) {
    EXPECT_FALSE(event.event().has_visit_recorded()) << event.event().ShortDebugString();
  }
}

TEST_F(IdentityAreaTest, AHouseholdEventClaimingAnotherVillageInScopeIsRejectedNamingBoth) {
  // kH3 lives in kV2; county staff claim kV1.
  const v1::PushResult result = PushOne(county(), county().Visit(kH3, kV1));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_SUBJECT_MISMATCH") << result.ShortDebugString();
  EXPECT_EQ(result.rejected().field(), "area_code");
  EXPECT_TRUE(absl::StrContains(result.rejected().message(), kV1)) << result.rejected().message();
  EXPECT_TRUE(absl::StrContains(result.rejected().message(), kV2)) << result.rejected().message();
}

TEST_F(IdentityAreaTest, AHouseholdRegisteredInAVillageNobodyKnowsIsRejected) {
  const v1::PushResult result =
      PushOne(county(), county().Register(RandomUuid(), "620102001099", "N-99"));
  ASSERT_EQ(OutcomeOf(result), "REJECTION_CODE_UNKNOWN_REFERENCE") << result.ShortDebugString();
  EXPECT_EQ(result.rejected().field(), "area_code");
}

TEST_F(IdentityAreaTest, AHouseholdRegisteredAndEditedInOnePushIsPlacedInItsVillage) {
  const std::string id = RandomUuid();
  v1::PushResponse response =
      MustPush(tablet(), {tablet().Register(id, kV2, "N-new"),
                          tablet().SetField(id, kV2, "phone", Text("13800000000"), 0),
                          tablet().Visit(id, kV2)});
  ASSERT_EQ(response.results_size(), 3);
  // A later event of the same push claiming another village is still refused.
  const v1::Event wrong_register = tablet().Register(RandomUuid(), kV1, "N-new2");
  v1::PushResponse mixed;
  const std::string other = wrong_register.subject().id();
  ASSERT_TRUE(Push(tablet(), {wrong_register, tablet().Visit(other, kV2)}, &mixed).ok());
  ASSERT_EQ(mixed.results_size(), 2);
  EXPECT_EQ(OutcomeOf(mixed.results(0)), "accepted");
  EXPECT_EQ(OutcomeOf(mixed.results(1)), "REJECTION_CODE_SUBJECT_MISMATCH")
      << mixed.results(1).ShortDebugString();
}

TEST_F(IdentityAreaTest, ACadresOwnHouseholdVisitAtItsRealVillageIsStillAccepted) {
  EXPECT_EQ(OutcomeOf(PushOne(phone(), phone().Visit(kH1, kV1))), "accepted");
  EXPECT_EQ(OutcomeOf(PushOne(county_b(), county_b().Visit(kH4, kV4))), "accepted");
}

}  // namespace
}  // namespace fieldsync::testing
