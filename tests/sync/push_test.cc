// SyncEngine::Push: results per event, sequencing, idempotency, rejections,
// signatures, relays and clocks, over a real RocksDB store.
#include <thread>

#include "absl/synchronization/notification.h"
#include "domain/domain_keys.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"
#include "sync/sync_keys.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

constexpr char kVillage[] = "620102001001";

class PushTest : public ::testing::Test {
 protected:
  PushTest()
      : phone_(env_.AddDevice("phone-1", "cadre-1", v1::ROLE_CADRE)),
        tablet_(env_.AddDevice("tablet-1", "township-1", v1::ROLE_TOWNSHIP_STAFF)) {}

  sync::LoggedEvent ReadStored(uint64_t offset) {
    absl::StatusOr<storage::LogRecord> record = env_.store().Read(offset);
    EXPECT_TRUE(record.ok()) << record.status();
    absl::StatusOr<sync::LoggedEvent> stored = sync::DecodeRecord(*record);
    EXPECT_TRUE(stored.ok()) << stored.status();
    return *stored;
  }

  Env env_;
  SimDevice& phone_;
  SimDevice& tablet_;
};

TEST_F(PushTest, AcceptsABatchInOrderAndAppliesIt) {
  const std::string hid = NewUuid();
  std::vector<v1::Event> events = {phone_.Register(hid, kVillage, "H0001"),
                                   phone_.Visit(HouseholdRef(hid), kVillage),
                                   phone_.SetField(hid, kVillage, "phone", Str("13800000000"), 0)};
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(phone_, events));
  ASSERT_EQ(outcome.response.results_size(), 3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(outcome.response.results(i).has_accepted())
        << outcome.response.results(i).DebugString();
    EXPECT_EQ(outcome.response.results(i).accepted().offset(), static_cast<uint64_t>(i + 1));
  }
  EXPECT_EQ(outcome.response.next_expected_seq().at("phone-1"), 4u);
  EXPECT_EQ(outcome.accepted, 3u);

  std::optional<v1::Household> h = ReadHousehold(env_.store(), hid);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->household_number(), "H0001");
  EXPECT_EQ(h->village_code(), kVillage);
  EXPECT_EQ(h->status(), v1::HOUSEHOLD_STATUS_IDENTIFIED);
  EXPECT_EQ(h->fields().at("phone").value().string_value(), "13800000000");
  EXPECT_EQ(h->fields().at("phone").version(), 1u);
  EXPECT_EQ(h->last_offset(), 3u);

  // The stored event carries what the server added.
  const sync::LoggedEvent stored = ReadStored(3);
  EXPECT_EQ(stored.actor(), "cadre-1");
  EXPECT_TRUE(stored.relayed_by().empty());
  EXPECT_EQ(stored.adopted_hlc(), events[2].hlc());
  ASSERT_EQ(stored.writes().size(), 1);
  EXPECT_EQ(stored.writes()[0].field(), "phone");
  EXPECT_EQ(stored.writes()[0].result(), v1::WRITE_RESULT_APPLIED);
  EXPECT_TRUE(env_.store().VerifyChain(1, env_.store().Head()).ok());
}

TEST_F(PushTest, ReplayIsADuplicateForeverAcrossRestarts) {
  const std::string hid = NewUuid();
  std::vector<v1::Event> events = {phone_.Register(hid, kVillage, "H0002"),
                                   phone_.Visit(HouseholdRef(hid), kVillage)};
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome first, env_.Push(phone_, events));
  ASSERT_TRUE(first.response.results(1).has_accepted());
  const auto before = AllProjections(env_.store());

  env_.Reopen();
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome replay, env_.Push(phone_, events));
  ASSERT_EQ(replay.response.results_size(), 2);
  EXPECT_EQ(replay.response.results(0).duplicate().original_offset(), 1u);
  EXPECT_EQ(replay.response.results(1).duplicate().original_offset(), 2u);
  EXPECT_EQ(replay.duplicates, 2u);
  EXPECT_EQ(env_.store().Head(), 2u);
  EXPECT_EQ(AllProjections(env_.store()), before);
}

TEST_F(PushTest, TheSameEventTwiceInOnePushIsOneAppendAndOneDuplicate) {
  const std::string hid = NewUuid();
  v1::Event registered = phone_.Register(hid, kVillage, "H0003");
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(phone_, {registered, registered}));
  EXPECT_EQ(outcome.response.results(0).accepted().offset(), 1u);
  EXPECT_EQ(outcome.response.results(1).duplicate().original_offset(), 1u);
  EXPECT_EQ(env_.store().Head(), 1u);
}

TEST_F(PushTest, TheSameEventIdWithOtherContentIsRejected) {
  const std::string hid = NewUuid();
  v1::Event registered = phone_.Register(hid, kVillage, "H0004");
  ASSERT_OK(env_.Push(phone_, {registered}).status());
  v1::Event reused = phone_.Visit(HouseholdRef(hid), kVillage);
  reused.set_event_id(registered.event_id());
  phone_.Sign(reused);
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(phone_, {reused}));
  ASSERT_TRUE(outcome.response.results(0).has_rejected());
  EXPECT_EQ(outcome.response.results(0).rejected().code(), v1::REJECTION_CODE_EVENT_ID_REUSED);
  // It still took its device_seq.
  EXPECT_EQ(outcome.response.next_expected_seq().at("phone-1"), 3u);
}

TEST_F(PushTest, AGapHoldsTheEventNamingTheNextExpectedNumberAndWritesNothing) {
  const std::string hid = NewUuid();
  ASSERT_OK(env_.Push(phone_, {phone_.Register(hid, kVillage, "H0005")}).status());
  v1::Event second = phone_.Visit(HouseholdRef(hid), kVillage);  // seq 2, never pushed
  (void)second;
  v1::Event third = phone_.Visit(HouseholdRef(hid), kVillage);  // seq 3
  const auto before = AllProjections(env_.store());
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(phone_, {third}));
  ASSERT_EQ(outcome.response.results_size(), 1);
  const v1::PushResult& held = outcome.response.results(0);
  ASSERT_TRUE(held.has_held()) << held.ShortDebugString();
  EXPECT_EQ(held.held().expected_device_seq(), 2u);
  EXPECT_EQ(outcome.response.next_expected_seq().at("phone-1"), 2u);
  EXPECT_EQ(outcome.held, 1u);
  EXPECT_EQ(env_.store().Head(), 1u);
  EXPECT_EQ(AllProjections(env_.store()), before);

  // The gap filled, both go in.
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome filled, env_.Push(phone_, {second, third}));
  EXPECT_TRUE(filled.response.results(0).has_accepted());
  EXPECT_TRUE(filled.response.results(1).has_accepted());
}

TEST_F(PushTest, ARejectedEventIsRecordedAdvancesTheSequenceAndNeverBlocksTheQueue) {
  const std::string hid = NewUuid();
  v1::Event registered = phone_.Register(hid, kVillage, "H0006");
  v1::Event bad = phone_.Make(HouseholdRef(hid), kVillage, [](v1::Event& e) {
    v1::VisitRecorded* v = e.mutable_visit_recorded();
    v->mutable_start_time()->set_seconds(2000);
    v->mutable_end_time()->set_seconds(1000);  // Ends before it starts.
    v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
  });
  std::vector<v1::Event> events = {registered, bad, phone_.Visit(HouseholdRef(hid), kVillage)};
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(phone_, events));
  EXPECT_TRUE(outcome.response.results(0).has_accepted());
  ASSERT_TRUE(outcome.response.results(1).has_rejected());
  EXPECT_EQ(outcome.response.results(1).rejected().code(), v1::REJECTION_CODE_INVALID_VALUE);
  EXPECT_EQ(outcome.response.results(1).rejected().field(), "visit_recorded.end_time");
  EXPECT_TRUE(outcome.response.results(2).has_accepted());
  EXPECT_EQ(outcome.response.next_expected_seq().at("phone-1"), 4u);
  EXPECT_FALSE(
      env_.store().LookupEventId(sync::LogEventId("phone-1", bad.event_id()))->has_value());

  // Visible to the device and its supervisor.
  v1::ListRejectionsRequest by_device;
  by_device.set_device_id("phone-1");
  ASSERT_OK_AND_ASSIGN(v1::ListRejectionsResponse listed,
                       env_.engine().ListRejections(Env::AllScope(), by_device));
  ASSERT_EQ(listed.rejections_size(), 1);
  EXPECT_EQ(listed.rejections(0).event_id(), bad.event_id());
  EXPECT_EQ(listed.rejections(0).device_seq(), 2u);
  EXPECT_EQ(listed.rejections(0).actor(), "cadre-1");
  EXPECT_EQ(listed.rejections(0).event().event_id(), bad.event_id());
  v1::ListRejectionsRequest by_township;
  by_township.set_scope_prefix("620102001");
  sync::Scope township;
  township.area_prefixes = {"620102001"};
  ASSERT_OK_AND_ASSIGN(listed, env_.engine().ListRejections(township, by_township));
  EXPECT_EQ(listed.rejections_size(), 1);

  // A replay answers the same rejection and writes nothing.
  const uint64_t head = env_.store().Head();
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome replay, env_.Push(phone_, events));
  EXPECT_EQ(replay.response.results(1).rejected().code(), v1::REJECTION_CODE_INVALID_VALUE);
  EXPECT_TRUE(replay.response.results(2).has_duplicate());
  EXPECT_EQ(env_.store().Head(), head);
}

TEST_F(PushTest, AMergeRejectionBecomesARejectionAndStillAdvancesTheSequence) {
  const std::string unknown = NewUuid();
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome,
                       env_.Push(phone_, {phone_.Visit(HouseholdRef(unknown), kVillage)}));
  ASSERT_TRUE(outcome.response.results(0).has_rejected());
  EXPECT_EQ(outcome.response.results(0).rejected().code(), v1::REJECTION_CODE_UNKNOWN_SUBJECT);
  EXPECT_EQ(outcome.response.next_expected_seq().at("phone-1"), 2u);
  v1::GetHistoryRequest history;
  *history.mutable_subject() = HouseholdRef(unknown);
  ASSERT_OK_AND_ASSIGN(v1::GetHistoryResponse events,
                       env_.engine().GetHistory(Env::AllScope(), history));
  EXPECT_EQ(events.events_size(), 0);
}

TEST_F(PushTest, ABadSignatureIsRejectedWithoutTakingTheDevicesNumber) {
  const std::string hid = NewUuid();
  v1::Event forged = phone_.Register(hid, kVillage, "H0007");
  forged.mutable_household_registered()->set_head_name("改過的名字");  // Signature no longer fits.
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(phone_, {forged}));
  ASSERT_TRUE(outcome.response.results(0).has_rejected());
  EXPECT_EQ(outcome.response.results(0).rejected().code(), v1::REJECTION_CODE_BAD_SIGNATURE);
  EXPECT_EQ(outcome.response.next_expected_seq().at("phone-1"), 1u);
  EXPECT_FALSE(ReadHousehold(env_.store(), hid).has_value());
}

TEST_F(PushTest, ARelayedEventKeepsItsSignerAndRecordsTheRelay) {
  const std::string hid = NewUuid();
  std::vector<v1::Event> events = {phone_.Register(hid, kVillage, "H0008"),
                                   phone_.Visit(HouseholdRef(hid), kVillage)};
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(tablet_, events));
  ASSERT_TRUE(outcome.response.results(1).has_accepted());
  EXPECT_EQ(outcome.response.next_expected_seq().at("phone-1"), 3u);
  EXPECT_EQ(outcome.response.next_expected_seq().at("tablet-1"), 1u);
  const sync::LoggedEvent stored = ReadStored(2);
  EXPECT_EQ(stored.event().device_id(), "phone-1");
  EXPECT_EQ(stored.relayed_by(), "tablet-1");
  EXPECT_EQ(stored.actor(), "cadre-1");

  // The phone pushing the same events itself later gets duplicates.
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome direct, env_.Push(phone_, events));
  EXPECT_TRUE(direct.response.results(0).has_duplicate());
  EXPECT_TRUE(direct.response.results(1).has_duplicate());
}

TEST_F(PushTest, ARelayedEventMustLieInItsSignersScopeToo) {
  const std::string inside = NewUuid();
  const std::string outside = NewUuid();
  // Registered by the tablet's own user, who sees the whole county.
  SimDevice& county = env_.AddDevice("county-1", "county-user", v1::ROLE_COUNTY_STAFF);
  ASSERT_OK(env_.Push(county, {county.Register(inside, kVillage, "S1"),
                               county.Register(outside, "620102002001", "S2")})
                .status());
  sync::PushContext context = env_.Context(tablet_, Env::AllScope());
  context.scope_of_user = [](std::string_view user) -> absl::StatusOr<sync::Scope> {
    sync::Scope scope;
    if (user == "cadre-1") scope.area_prefixes = {kVillage};
    return scope;
  };
  ASSERT_OK_AND_ASSIGN(
      sync::PushOutcome outcome,
      env_.engine().Push(context, SealForPush(std::vector<v1::Event>{
                                      phone_.Visit(HouseholdRef(inside), kVillage),
                                      phone_.Visit(HouseholdRef(outside), "620102002001")})));
  EXPECT_TRUE(outcome.response.results(0).has_accepted());
  EXPECT_EQ(outcome.response.results(1).rejected().code(), v1::REJECTION_CODE_OUT_OF_SCOPE);
}

TEST_F(PushTest, AClockFarAheadIsKeptAsEvidenceButNotAdopted) {
  const std::string hid = NewUuid();
  v1::Event registered = phone_.Register(hid, kVillage, "H0009");
  v1::Event future = phone_.Make(HouseholdRef(hid), kVillage, [](v1::Event& e) {
    v1::FieldPatch* p = e.mutable_household_fields_set()->add_patches();
    p->set_field("phone");
    *p->mutable_value() = Str("13900000000");
  });
  future.set_hlc(sync::HlcAt(env_.clock().Now() + absl::Hours(24 * 365)));
  phone_.Sign(future);
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(phone_, {registered, future}));
  ASSERT_TRUE(outcome.response.results(1).has_accepted());
  const sync::LoggedEvent stored = ReadStored(2);
  EXPECT_TRUE(stored.hlc_flagged());
  EXPECT_EQ(stored.event().hlc(), future.hlc());  // The evidence is kept as signed.
  EXPECT_LT(stored.adopted_hlc(), sync::HlcAt(env_.clock().Now() + absl::Minutes(6)));
  EXPECT_GE(stored.adopted_hlc(), sync::HlcAt(env_.clock().Now()));
  EXPECT_EQ(ReadHousehold(env_.store(), hid)->fields().at("phone").hlc(), stored.adopted_hlc());
}

TEST_F(PushTest, PushAsyncAnswersOnceWithoutBlockingTheCaller) {
  const std::string hid = NewUuid();
  absl::Notification done;
  absl::StatusOr<sync::PushOutcome> answer;
  int calls = 0;
  env_.engine().PushAsync(env_.Context(phone_, Env::AllScope()),
                          {SealForPush(phone_.Register(hid, kVillage, "H0010"))},
                          [&](absl::StatusOr<sync::PushOutcome> outcome) {
                            ++calls;
                            answer = std::move(outcome);
                            done.Notify();
                          });
  done.WaitForNotification();
  EXPECT_EQ(calls, 1);
  ASSERT_OK(answer.status());
  EXPECT_TRUE(answer->response.results(0).has_accepted());
}

TEST_F(PushTest, AnEmptyPushAnswersTheCallersNextExpectedNumber) {
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(phone_, {}));
  EXPECT_EQ(outcome.response.results_size(), 0);
  EXPECT_EQ(outcome.response.next_expected_seq().at("phone-1"), 1u);
  EXPECT_TRUE(outcome.response.has_server_time());
}

TEST_F(PushTest, APushOverTheLimitsIsResourceExhausted) {
  sync::SyncOptions options;
  options.max_push_events = 2;
  Env small(options);
  SimDevice& phone = small.AddDevice("p", "u", v1::ROLE_CADRE);
  const std::string hid = NewUuid();
  absl::StatusOr<sync::PushOutcome> outcome = small.Push(
      phone, {phone.Register(hid, kVillage, "H1"), phone.Visit(HouseholdRef(hid), kVillage),
              phone.Visit(HouseholdRef(hid), kVillage)});
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(small.store().Head(), 0u);
}

TEST_F(PushTest, ConcurrentDirectAndRelayedPushesOfTheSameEventsAppendEachOnce) {
  const std::string hid = NewUuid();
  std::vector<v1::Event> events = {phone_.Register(hid, kVillage, "H0011")};
  for (int i = 0; i < 40; ++i) events.push_back(phone_.Visit(HouseholdRef(hid), kVillage));
  absl::StatusOr<sync::PushOutcome> direct;
  absl::StatusOr<sync::PushOutcome> relayed;
  std::thread a([&] { direct = env_.Push(phone_, events); });
  std::thread b([&] { relayed = env_.Push(tablet_, events); });
  a.join();
  b.join();
  // Either may lose the race for a number; the loser retries as a client would.
  for (auto* outcome : {&direct, &relayed}) {
    if (!outcome->ok()) {
      ASSERT_EQ(outcome->status().code(), absl::StatusCode::kFailedPrecondition);
      *outcome = env_.Push(phone_, events);
      ASSERT_OK(outcome->status());
    }
  }
  EXPECT_EQ(env_.store().Head(), events.size());
  for (int i = 0; i < static_cast<int>(events.size()); ++i) {
    const v1::PushResult& x = direct->response.results(i);
    const v1::PushResult& y = relayed->response.results(i);
    const uint64_t ox = x.has_accepted() ? x.accepted().offset() : x.duplicate().original_offset();
    const uint64_t oy = y.has_accepted() ? y.accepted().offset() : y.duplicate().original_offset();
    EXPECT_EQ(ox, oy) << i;
    EXPECT_NE(ox, 0u);
  }
  EXPECT_TRUE(env_.store().VerifyChain(1, env_.store().Head()).ok());
}

TEST_F(PushTest, AReplayFromADeviceRevokedSinceIsStillADuplicate) {
  v1::Event registered = phone_.Register(NewUuid(), kVillage, "H0013");
  ASSERT_OK(env_.Push(phone_, {registered}).status());
  env_.keys().Revoke("phone-1");
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome, env_.Push(tablet_, {registered}));
  EXPECT_EQ(outcome.response.results(0).duplicate().original_offset(), 1u);
}

TEST_F(PushTest, ARevokedDeviceIsRejected) {
  env_.keys().Revoke("phone-1");
  ASSERT_OK_AND_ASSIGN(sync::PushOutcome outcome,
                       env_.Push(phone_, {phone_.Register(NewUuid(), kVillage, "H0012")}));
  EXPECT_EQ(outcome.response.results(0).rejected().code(), v1::REJECTION_CODE_DEVICE_REVOKED);
}

}  // namespace
}  // namespace fieldsync::test
