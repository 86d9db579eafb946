// Relays and identities in the push path, end to end (issue 7, items 3, 4,
// 5, 6 (corrections) and 9): a relayed event is judged as its signer's (role,
// scope, sequence); idempotency is per signing device; a visit is corrected
// only by its author; records of events of unproven origin belong to the
// device that pushed them. Each test plays the attack, then shows the phone's
// own later push is answered as if the attack had not happened.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/time.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

class RelayDefectsTest : public SyncWorld {
 public:
  // A new device enrolled for an existing user.
  std::unique_ptr<TestDevice> EnrollFor(const std::string& user_id) {
    auto device = std::make_unique<TestDevice>(DeviceClock());
    absl::Status enrolled = device->Enroll(*harness().channel(), admin_token(), user_id);
    EXPECT_TRUE(enrolled.ok()) << enrolled;
    return device;
  }

  // A new user (and one enrolled device) made through AdminService.
  std::unique_ptr<TestDevice> AddUser(const v1::User& user) {
    auto upserted = UpsertUser(*harness().channel(), admin_token(), user);
    EXPECT_TRUE(upserted.ok()) << upserted.status();
    return EnrollFor(user.id());
  }

  v1::ListRejectionsResponse ListRejections(const std::string& token, const std::string& prefix,
                                            const std::string& device_id) {
    v1::ListRejectionsRequest request;
    request.set_scope_prefix(prefix);
    request.set_device_id(device_id);
    v1::ListRejectionsResponse response;
    auto context = ServiceHarness::Context(token);
    grpc::Status status = query().ListRejections(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // True if any record in `response` is of the event `event_id`.
  static bool Lists(const v1::ListRejectionsResponse& response, const std::string& event_id) {
    for (const v1::RejectionRecord& record : response.rejections()) {
      if (record.event_id() == event_id) return true;
    }
    return false;
  }
};

v1::Event Correction(TestDevice& device, const std::string& original_event_id, bool withdrawn,
                     absl::Time now) {
  return device.Make(Household(kH1), kV1, [&](v1::Event& e) {
    v1::VisitCorrected* c = e.mutable_visit_corrected();
    c->set_original_event_id(original_event_id);
    c->set_reason("記錯了");
    if (withdrawn) {
      c->set_withdrawn(true);
    } else {
      v1::VisitRecorded* v = c->mutable_corrected();
      *v->mutable_start_time() = base::ToTimestamp(now - absl::Hours(2));
      *v->mutable_end_time() = base::ToTimestamp(now - absl::Hours(1));
      v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
      v->set_notes("重寫的走訪記錄");
    }
  });
}

// Item 3. county2 (county B) cannot reach kH1 (county A), but the phone's
// visit of kH1 is in the phone's scope: relayed, it is the phone's visit.
TEST_F(RelayDefectsTest, ARelayOutOfTheEventsScopeCannotDestroyAPhonesValidVisit) {
  v1::Event visit = phone().Visit(kH1, kV1);
  v1::PushResponse relayed;
  ASSERT_TRUE(Push(county_b(), {visit}, &relayed).ok());
  ASSERT_EQ(relayed.results_size(), 1);
  ASSERT_TRUE(relayed.results(0).has_accepted()) << relayed.results(0).ShortDebugString();
  const uint64_t offset = relayed.results(0).accepted().offset();
  EXPECT_EQ(relayed.next_expected_seq().at(phone().id()), 2u);
  const sync::LoggedEvent stored = harness().ReadLog().back();
  EXPECT_EQ(stored.offset(), offset);
  EXPECT_EQ(stored.actor(), "cadre1");
  EXPECT_EQ(stored.relayed_by(), county_b().id());

  // The phone pushes it itself: one copy, the relay's offset.
  v1::PushResponse direct;
  ASSERT_TRUE(Push(phone(), {visit}, &direct).ok());
  ASSERT_TRUE(direct.results(0).has_duplicate()) << direct.results(0).ShortDebugString();
  EXPECT_EQ(direct.results(0).duplicate().original_offset(), offset);
  // Nothing about it was recorded as a rejection anywhere.
  EXPECT_FALSE(Lists(ListRejections(phone().token(), "", phone().id()), visit.event_id()));

  // Still judged as the signer's: a relay cannot launder an event outside the
  // phone's scope either (kH2 is not the cadre's), whoever relays it.
  v1::PushResponse laundered;
  ASSERT_TRUE(Push(county(), {phone().Visit(kH2, kV1)}, &laundered).ok());
  EXPECT_EQ(OutcomeOf(laundered.results(0)), "REJECTION_CODE_OUT_OF_SCOPE");
  // And the phone's queue goes on behind it.
  v1::PushResponse next;
  ASSERT_TRUE(Push(phone(), {phone().Visit(kH1, kV1)}, &next).ok());
  EXPECT_EQ(OutcomeOf(next.results(0)), "accepted");
  EXPECT_EQ(next.next_expected_seq().at(phone().id()), 4u);
}

// Item 4. The tablet takes the event_id of the phone's pending visit for an
// event of its own: both are appended, each its signer's, and each replays as
// a duplicate of its own offset.
TEST_F(RelayDefectsTest, ARelayCannotSquatTheEventIdOfAPhonesPendingVisit) {
  v1::Event visit = phone().Visit(kH1, kV1);  // Made offline, not pushed yet.
  v1::Event squat = tablet().Visit(kH1, kV1, "佔用手機的 event_id");
  squat.set_event_id(visit.event_id());
  tablet().Sign(squat);
  v1::PushResponse squatted = MustPush(tablet(), {squat});
  const uint64_t squat_offset = squatted.results(0).accepted().offset();

  v1::PushResponse direct;
  ASSERT_TRUE(Push(phone(), {visit}, &direct).ok());
  ASSERT_TRUE(direct.results(0).has_accepted()) << direct.results(0).ShortDebugString();
  const uint64_t visit_offset = direct.results(0).accepted().offset();
  EXPECT_GT(visit_offset, squat_offset);
  EXPECT_EQ(direct.next_expected_seq().at(phone().id()), 2u);

  // Replays: each device's own event.
  v1::PushResponse again;
  ASSERT_TRUE(Push(phone(), {visit}, &again).ok());
  EXPECT_EQ(again.results(0).duplicate().original_offset(), visit_offset);
  ASSERT_TRUE(Push(tablet(), {squat}, &again).ok());
  EXPECT_EQ(again.results(0).duplicate().original_offset(), squat_offset);
  // The same id from the same device with other content is still reuse.
  v1::Event reused = phone().Visit(kH1, kV1, "另一個內容");
  reused.set_event_id(visit.event_id());
  phone().Sign(reused);
  ASSERT_TRUE(Push(phone(), {reused}, &again).ok());
  EXPECT_EQ(OutcomeOf(again.results(0)), "REJECTION_CODE_EVENT_ID_REUSED");

  // A reference by that id resolves to the phone's visit for the phone's
  // correction, not to the tablet's event that took the id first.
  v1::PushResponse corrected;
  ASSERT_TRUE(Push(phone(), {Correction(phone(), visit.event_id(), false, harness().clock().Now())},
                   &corrected)
                  .ok());
  EXPECT_EQ(OutcomeOf(corrected.results(0)), "accepted") << corrected.results(0).ShortDebugString();
}

// Item 5. HQ analysts and admins may not Push (docs/authorization.md); their
// devices' events relayed by a township tablet are refused the same way.
TEST_F(RelayDefectsTest, EventsSignedByReadOnlyRolesAreRefusedWhenRelayed) {
  std::unique_ptr<TestDevice> hq = EnrollFor("hq1");
  std::unique_ptr<TestDevice> admin_device = EnrollFor("admin");
  v1::Event inspection = hq->Make(Household(kH1), kV1, [](v1::Event& e) {
    v1::InspectionRecorded* i = e.mutable_inspection_recorded();
    i->set_inspector_user_id("hq1");
    i->set_inspector_name("hq1");
    i->set_findings("入戶核查");
    i->set_result(v1::INSPECTION_RESULT_PASSED);
  });
  v1::Event feedback = hq->Make(v1::SubjectRef(), kV1, [](v1::Event& e) {
    e.mutable_subject()->set_kind(v1::SUBJECT_KIND_VILLAGE);
    e.mutable_subject()->set_id(kV1);
    v1::FeedbackFiled* f = e.mutable_feedback_filed();
    f->set_from_unit_id("U1");
    f->set_kind(v1::FEEDBACK_KIND_PROBLEM);
    f->set_title("意見");
    f->set_content("建議");
  });
  v1::Event proposal = admin_device->Propose(kH1, kV1, v1::HOUSEHOLD_STATUS_IDENTIFIED,
                                             v1::HOUSEHOLD_STATUS_NOT_EXITED);
  v1::Event visit = phone().Visit(kH1, kV1);
  v1::PushResponse relayed;
  ASSERT_TRUE(Push(tablet(), {inspection, feedback, proposal, visit}, &relayed).ok());
  ASSERT_EQ(relayed.results_size(), 4);
  for (int i = 0; i < 3; ++i) {
    const v1::PushResult& result = relayed.results(i);
    ASSERT_TRUE(result.has_rejected()) << i << ": " << result.ShortDebugString();
    EXPECT_EQ(result.rejected().code(), v1::REJECTION_CODE_PERMISSION_DENIED) << i;
    EXPECT_TRUE(absl::StrContains(result.rejected().message(), "may not push"))
        << i << ": " << result.rejected().message();
  }
  EXPECT_TRUE(absl::StrContains(relayed.results(0).rejected().message(), "hq_analyst"));
  EXPECT_TRUE(absl::StrContains(relayed.results(2).rejected().message(), "admin"));
  // The phone's visit in the same relay goes in.
  ASSERT_TRUE(relayed.results(3).has_accepted()) << relayed.results(3).ShortDebugString();
  const uint64_t offset = relayed.results(3).accepted().offset();
  // Nothing they signed is in the log (rejection markers aside).
  for (const sync::LoggedEvent& stored : harness().ReadLog()) {
    if (stored.is_marker()) continue;
    EXPECT_NE(stored.event().device_id(), hq->id()) << stored.event().ShortDebugString();
    EXPECT_NE(stored.event().device_id(), admin_device->id()) << stored.event().ShortDebugString();
  }
  // Refused as the signer's own: the HQ device's numbers are spent, and the
  // phone's own push of its visit is a duplicate of the relayed one.
  EXPECT_EQ(relayed.next_expected_seq().at(hq->id()), 3u);
  v1::PushResponse direct;
  ASSERT_TRUE(Push(phone(), {visit}, &direct).ok());
  EXPECT_EQ(direct.results(0).duplicate().original_offset(), offset);
}

// Item 6 (corrections). town1 may read and write kH1, but the cadre's visit
// is the cadre's: supervisors record an inspection instead.
TEST_F(RelayDefectsTest, AVisitIsCorrectedOnlyByItsAuthor) {
  v1::Event visit = phone().Visit(kH1, kV1);
  MustPush(phone(), {visit});

  v1::PushResponse withdrawn;
  ASSERT_TRUE(Push(tablet(),
                   {Correction(tablet(), visit.event_id(), true, harness().clock().Now())},
                   &withdrawn)
                  .ok());
  ASSERT_TRUE(withdrawn.results(0).has_rejected()) << withdrawn.results(0).ShortDebugString();
  EXPECT_EQ(withdrawn.results(0).rejected().code(), v1::REJECTION_CODE_PERMISSION_DENIED);
  EXPECT_EQ(withdrawn.results(0).rejected().field(), "visit_corrected.original_event_id");
  EXPECT_TRUE(absl::StrContains(withdrawn.results(0).rejected().message(), "cadre1"))
      << withdrawn.results(0).rejected().message();

  // The author corrects it, directly or through the tablet, or from a second
  // device of theirs.
  v1::PushResponse own;
  ASSERT_TRUE(
      Push(phone(), {Correction(phone(), visit.event_id(), false, harness().clock().Now())}, &own)
          .ok());
  EXPECT_EQ(OutcomeOf(own.results(0)), "accepted") << own.results(0).ShortDebugString();
  ASSERT_TRUE(
      Push(tablet(), {Correction(phone(), visit.event_id(), true, harness().clock().Now())}, &own)
          .ok());
  EXPECT_EQ(OutcomeOf(own.results(0)), "accepted") << own.results(0).ShortDebugString();
  std::unique_ptr<TestDevice> second = EnrollFor("cadre1");
  ASSERT_TRUE(
      Push(*second, {Correction(*second, visit.event_id(), false, harness().clock().Now())}, &own)
          .ok());
  EXPECT_EQ(OutcomeOf(own.results(0)), "accepted") << own.results(0).ShortDebugString();
}

// Item 9. A device of county B pushes a badly signed event that names kH1 in
// county A and claims to be the phone: the record is the pusher's.
TEST_F(RelayDefectsTest, ARecordOfUnprovenOriginBelongsToThePushingDeviceOnly) {
  v1::UpsertUnitRequest unit;
  unit.mutable_unit()->set_id("U2");
  unit.mutable_unit()->set_name("unit U2");
  unit.mutable_unit()->set_area_code("620103001000");
  v1::UpsertUnitResponse unit_done;
  auto context = ServiceHarness::Context(admin_token());
  ASSERT_TRUE(admin().UpsertUnit(context.get(), unit, &unit_done).ok());
  v1::User cadre2;
  cadre2.set_id("cadre2");
  cadre2.set_name("cadre2");
  cadre2.set_role(v1::ROLE_CADRE);
  cadre2.set_rank(v1::CADRE_RANK_OTHER);
  cadre2.set_unit_id("U2");
  std::unique_ptr<TestDevice> stranger = AddUser(cadre2);

  // The phone's next event as the stranger guesses it, with a bad signature.
  v1::Event planted = phone().Visit(kH1, kV1, "假的走訪");
  SetTestSignature(planted, std::string(64, 'x'));
  phone().set_next_seq(planted.device_seq());
  v1::PushResponse refused;
  ASSERT_TRUE(Push(*stranger, {planted}, &refused).ok());
  EXPECT_EQ(OutcomeOf(refused.results(0)), "REJECTION_CODE_BAD_SIGNATURE");

  // Not in the claimed area's list, not under the claimed device.
  EXPECT_FALSE(Lists(ListRejections(tablet().token(), kTownA1, ""), planted.event_id()));
  EXPECT_FALSE(Lists(ListRejections(county().token(), kCountyA, ""), planted.event_id()));
  EXPECT_FALSE(Lists(ListRejections(phone().token(), "", phone().id()), planted.event_id()));
  EXPECT_FALSE(Lists(ListRejections(hq_token(), "", phone().id()), planted.event_id()));

  // The pusher's own list has it, and so does the supervisor of the pusher's
  // unit's area (county B).
  v1::ListRejectionsResponse own = ListRejections(stranger->token(), "", stranger->id());
  ASSERT_TRUE(Lists(own, planted.event_id()));
  const v1::RejectionRecord& record = own.rejections(0);
  EXPECT_TRUE(record.unproven_origin());
  EXPECT_EQ(record.device_id(), stranger->id());
  EXPECT_EQ(record.actor(), "cadre2");
  EXPECT_EQ(record.area_code(), "620103001000");
  EXPECT_EQ(record.subject().kind(), v1::SUBJECT_KIND_DEVICE);
  EXPECT_EQ(record.subject().id(), stranger->id());
  EXPECT_TRUE(Lists(ListRejections(county_b().token(), "620103", ""), planted.event_id()));

  // The phone's own event with that number goes in.
  v1::PushResponse direct;
  ASSERT_TRUE(Push(phone(), {phone().Visit(kH1, kV1)}, &direct).ok());
  EXPECT_EQ(OutcomeOf(direct.results(0)), "accepted") << direct.results(0).ShortDebugString();
  EXPECT_EQ(direct.next_expected_seq().at(phone().id()), 2u);
}

}  // namespace
}  // namespace fieldsync::testing
