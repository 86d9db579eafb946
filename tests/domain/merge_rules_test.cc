// The merge rules of the domain (shuanglian_policy.h), through the real engine
// and store: versioned fields, conflicts and their resolution, members,
// plans, insert-only bodies, corrections and links.
#include "absl/strings/str_cat.h"
#include "domain/domain_keys.h"
#include "domain/queries.h"
#include "gtest/gtest.h"
#include "sync/commit_view.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

constexpr char kVillage[] = "620102001001";

class MergeRulesTest : public ::testing::Test {
 protected:
  MergeRulesTest()
      : a_(env_.AddDevice("dev-a", "cadre-a", v1::ROLE_CADRE)),
        b_(env_.AddDevice("dev-b", "cadre-b", v1::ROLE_CADRE)),
        c_(env_.AddDevice("dev-c", "cadre-c", v1::ROLE_CADRE)),
        township_(env_.AddDevice("dev-t", "township-1", v1::ROLE_TOWNSHIP_STAFF)),
        county_(env_.AddDevice("dev-county", "county-1", v1::ROLE_COUNTY_STAFF)) {}

  std::string NewHousehold() {
    const std::string id = NewUuid();
    EXPECT_OK(env_.Push(a_, {a_.Register(id, kVillage, absl::StrCat("R", ++n_))}).status());
    return id;
  }

  v1::PushResult PushOne(SimDevice& device, const v1::Event& event) {
    absl::StatusOr<sync::PushOutcome> outcome = env_.Push(device, {event});
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    if (!outcome.ok()) return {};
    return outcome->response.results(0);
  }

  // Folds a server-made UserUpserted through the policy, as the server's
  // writer does: the domain then knows the user as a link holder.
  void UpsertUser(const std::string& id, v1::Role role) {
    sync::LoggedEvent stored;
    v1::Event& event = stored.parsed;
    event.set_event_id(NewUuid());
    event.mutable_subject()->set_kind(v1::SUBJECT_KIND_USER);
    event.mutable_subject()->set_id(id);
    v1::User* user = event.mutable_user_upserted()->mutable_user();
    user->set_id(id);
    user->set_name(id);
    user->set_role(role);
    stored.stored.set_event(event.SerializeAsString());
    storage::AppendEntry entry = sync::ToAppendEntry(stored.stored, stored.parsed);
    const domain::ShuanglianPolicy* policy = &env_.policy();
    entry.prepare = [stored, policy](storage::CommitContext& ctx) -> absl::Status {
      sync::ContextView view(ctx);
      sync::EventMeta meta;
      meta.offset = ctx.offset();
      absl::StatusOr<sync::MergeResult> merged = policy->Merge(stored.event(), meta, view);
      if (!merged.ok()) return merged.status();
      ctx.payload() = sync::EncodePayload(stored.stored);
      return absl::OkStatus();
    };
    std::vector<storage::AppendEntry> entries;
    entries.push_back(std::move(entry));
    EXPECT_OK(env_.store().Append(std::move(entries)).status());
  }

  sync::LoggedEvent Stored(uint64_t offset) {
    return *sync::DecodeRecord(*env_.store().Read(offset));
  }

  Env env_;
  SimDevice& a_;
  SimDevice& b_;
  SimDevice& c_;
  SimDevice& township_;
  SimDevice& county_;
  int n_ = 0;
};

TEST_F(MergeRulesTest, SequentialEditsApplyAndCountVersions) {
  const std::string h = NewHousehold();
  v1::PushResult r = PushOne(a_, a_.SetField(h, kVillage, "phone", Str("1"), 0));
  ASSERT_TRUE(r.has_accepted());
  r = PushOne(b_, b_.SetField(h, kVillage, "phone", Str("2"), 1));
  ASSERT_TRUE(r.has_accepted()) << "b saw version 1: a sequential edit";
  const v1::Household state = *ReadHousehold(env_.store(), h);
  EXPECT_EQ(state.fields().at("phone").value().string_value(), "2");
  EXPECT_EQ(state.fields().at("phone").version(), 2u);
  EXPECT_EQ(state.fields().at("phone").device_id(), "dev-b");
  EXPECT_EQ(state.fields().at("phone").actor(), "cadre-b");
  EXPECT_EQ(state.open_conflict_ids_size(), 0);
  EXPECT_EQ(Stored(r.accepted().offset()).writes()[0].result(), v1::WRITE_RESULT_APPLIED);
}

TEST_F(MergeRulesTest, ConcurrentEditsPickTheHigherClockAndRecordBothInEitherOrder) {
  for (bool a_first : {true, false}) {
    const std::string h = NewHousehold();
    // Both saw version 1 of head_name (from registration); b writes later.
    v1::Event ea = a_.SetField(h, kVillage, "head_name", Str("張三"), 1);
    env_.clock().Advance(absl::Seconds(1));
    v1::Event eb = b_.SetField(h, kVillage, "head_name", Str("張叁"), 1);
    v1::PushResult first = a_first ? PushOne(a_, ea) : PushOne(b_, eb);
    v1::PushResult second = a_first ? PushOne(b_, eb) : PushOne(a_, ea);
    ASSERT_TRUE(first.has_accepted());
    ASSERT_TRUE(second.has_conflict_recorded()) << second.DebugString();
    const std::string conflict_id = second.conflict_recorded().conflict_ids(0);
    const sync::LoggedEvent stored = Stored(second.conflict_recorded().offset());
    EXPECT_EQ(stored.writes()[0].result(), a_first ? v1::WRITE_RESULT_WON : v1::WRITE_RESULT_LOST);
    EXPECT_EQ(stored.writes()[0].conflict_id(), conflict_id);

    const v1::Household state = *ReadHousehold(env_.store(), h);
    EXPECT_EQ(state.fields().at("head_name").value().string_value(), "張叁") << "b's HLC is higher";
    EXPECT_EQ(state.head_name(), "張叁");
    ASSERT_EQ(state.open_conflict_ids_size(), 1);
    EXPECT_EQ(state.open_conflict_ids(0), conflict_id);

    const v1::Conflict c = *ReadConflict(env_.store(), conflict_id);
    EXPECT_EQ(c.kind(), v1::CONFLICT_KIND_FIELD_CONCURRENT);
    EXPECT_EQ(c.field(), "head_name");
    EXPECT_EQ(c.base_version(), 1u);
    EXPECT_EQ(c.area_code(), kVillage);
    ASSERT_EQ(c.sides_size(), 2);
    std::set<std::string> values = {c.sides(0).field_value().string_value(),
                                    c.sides(1).field_value().string_value()};
    EXPECT_EQ(values, (std::set<std::string>{"張三", "張叁"}));
    EXPECT_EQ(c.sides(c.winner_side()).event_id(), eb.event_id());
    EXPECT_EQ(c.sides(c.winner_side()).actor(), "cadre-b");
    EXPECT_EQ(c.sides(c.winner_side()).hlc(), eb.hlc());
    EXPECT_LT(c.sides(0).offset(), c.sides(1).offset());
    EXPECT_TRUE(c.open());
  }
}

TEST_F(MergeRulesTest, EqualClocksBreakTiesByDeviceId) {
  const std::string h = NewHousehold();
  v1::Event ea = a_.SetField(h, kVillage, "phone", Str("a"), 0);
  v1::Event eb = b_.SetField(h, kVillage, "phone", Str("b"), 0);
  eb.set_hlc(ea.hlc());
  b_.Sign(eb);
  PushOne(b_, eb);
  ASSERT_TRUE(PushOne(a_, ea).has_conflict_recorded());
  EXPECT_EQ(ReadHousehold(env_.store(), h)->fields().at("phone").value().string_value(), "b")
      << "dev-b > dev-a";
}

TEST_F(MergeRulesTest, ADevicesOwnOfflineChainIsSequential) {
  const std::string h = NewHousehold();
  // Offline, a edits twice from what it last pulled (version 0).
  v1::PushResult r1 = PushOne(a_, a_.SetField(h, kVillage, "phone", Str("1"), 0));
  v1::PushResult r2 = PushOne(a_, a_.SetField(h, kVillage, "phone", Str("2"), 0));
  EXPECT_TRUE(r1.has_accepted());
  EXPECT_TRUE(r2.has_accepted());
  EXPECT_EQ(ReadHousehold(env_.store(), h)->fields().at("phone").value().string_value(), "2");
  EXPECT_EQ(ReadHousehold(env_.store(), h)->open_conflict_ids_size(), 0);
}

TEST_F(MergeRulesTest, LaterWritesJoinTheOpenConflictWithOneSidePerDevice) {
  const std::string h = NewHousehold();
  v1::Event ea = a_.SetField(h, kVillage, "phone", Str("a1"), 0);
  env_.clock().Advance(absl::Seconds(1));
  v1::Event eb = b_.SetField(h, kVillage, "phone", Str("b1"), 0);
  env_.clock().Advance(absl::Seconds(1));
  v1::Event ec = c_.SetField(h, kVillage, "phone", Str("c1"), 0);
  env_.clock().Advance(absl::Seconds(1));
  v1::Event ea2 = a_.SetField(h, kVillage, "phone", Str("a2"), 0);
  PushOne(c_, ec);
  v1::PushResult rb = PushOne(b_, eb);
  v1::PushResult ra = PushOne(a_, ea);
  v1::PushResult ra2 = PushOne(a_, ea2);
  ASSERT_TRUE(rb.has_conflict_recorded());
  const std::string id = rb.conflict_recorded().conflict_ids(0);
  EXPECT_EQ(ra.conflict_recorded().conflict_ids(0), id);
  EXPECT_EQ(ra2.conflict_recorded().conflict_ids(0), id);
  const v1::Conflict c = *ReadConflict(env_.store(), id);
  ASSERT_EQ(c.sides_size(), 3);
  std::set<std::string> events;
  for (const auto& side : c.sides()) events.insert(side.event_id());
  EXPECT_EQ(events, (std::set<std::string>{ec.event_id(), eb.event_id(), ea2.event_id()}));
  EXPECT_EQ(c.sides(c.winner_side()).event_id(), ea2.event_id());
  EXPECT_EQ(ReadHousehold(env_.store(), h)->fields().at("phone").value().string_value(), "a2");
  EXPECT_EQ(ReadHousehold(env_.store(), h)->open_conflict_ids_size(), 1);
}

TEST_F(MergeRulesTest, AResolutionSetsTheFieldClosesTheConflictAndTheFirstOneWins) {
  const std::string h = NewHousehold();
  v1::Event ea = a_.SetField(h, kVillage, "phone", Str("a"), 0);
  v1::Event eb = b_.SetField(h, kVillage, "phone", Str("b"), 0);
  PushOne(a_, ea);
  const std::string id = PushOne(b_, eb).conflict_recorded().conflict_ids(0);

  // A cadre may not resolve.
  v1::PushResult r =
      PushOne(a_, a_.Resolve(HouseholdRef(h), kVillage, id, [](auto& x) { x.set_chosen_side(0); }));
  EXPECT_EQ(r.rejected().code(), v1::REJECTION_CODE_PERMISSION_DENIED);
  // A value of the wrong type is refused.
  r = PushOne(township_, township_.Resolve(HouseholdRef(h), kVillage, id,
                                           [](auto& x) { *x.mutable_value() = Int(5); }));
  EXPECT_EQ(r.rejected().code(), v1::REJECTION_CODE_INVALID_VALUE);
  // A side that does not exist is refused.
  r = PushOne(township_, township_.Resolve(HouseholdRef(h), kVillage, id,
                                           [](auto& x) { x.set_chosen_side(7); }));
  EXPECT_EQ(r.rejected().code(), v1::REJECTION_CODE_INVALID_VALUE);

  r = PushOne(township_, township_.Resolve(HouseholdRef(h), kVillage, id, [](auto& x) {
    *x.mutable_value() = Str("13012345678");
  }));
  ASSERT_TRUE(r.has_accepted()) << r.DebugString();
  v1::Household state = *ReadHousehold(env_.store(), h);
  EXPECT_EQ(state.fields().at("phone").value().string_value(), "13012345678");
  EXPECT_EQ(state.fields().at("phone").device_id(), "dev-t");
  EXPECT_EQ(state.open_conflict_ids_size(), 0);
  const v1::Conflict c = *ReadConflict(env_.store(), id);
  EXPECT_FALSE(c.open());
  EXPECT_EQ(c.resolved_offset(), r.accepted().offset());
  EXPECT_EQ(c.resolved_by(), "township-1");

  r = PushOne(county_, county_.Resolve(HouseholdRef(h), kVillage, id,
                                       [](auto& x) { x.set_chosen_side(0); }));
  EXPECT_EQ(r.rejected().code(), v1::REJECTION_CODE_ALREADY_DECIDED);

  // A later concurrent edit (from a stale base) opens a new conflict.
  const uint64_t version = state.fields().at("phone").version();
  ASSERT_TRUE(PushOne(c_, c_.SetField(h, kVillage, "phone", Str("c"), version - 1))
                  .has_conflict_recorded());
  EXPECT_EQ(ReadHousehold(env_.store(), h)->open_conflict_ids_size(), 1);
  EXPECT_NE(ReadHousehold(env_.store(), h)->open_conflict_ids(0), id);
}

TEST_F(MergeRulesTest, ResolvingByChoosingASideTakesThatSidesValue) {
  const std::string h = NewHousehold();
  PushOne(a_, a_.SetField(h, kVillage, "housing_area", Int(8000), 0));
  const std::string id = PushOne(b_, b_.SetField(h, kVillage, "housing_area", Int(9000), 0))
                             .conflict_recorded()
                             .conflict_ids(0);
  const v1::Conflict c = *ReadConflict(env_.store(), id);
  const uint32_t loser = 1 - c.winner_side();
  ASSERT_TRUE(PushOne(township_, township_.Resolve(HouseholdRef(h), kVillage, id, [&](auto& x) {
                x.set_chosen_side(loser);
              })).has_accepted());
  EXPECT_EQ(ReadHousehold(env_.store(), h)->fields().at("housing_area").value().int_value(),
            c.sides(loser).field_value().int_value());
}

TEST_F(MergeRulesTest, FieldPatchesAreCheckedAgainstTheSchema) {
  const std::string h = NewHousehold();
  EXPECT_EQ(PushOne(a_, a_.SetField(h, kVillage, "colour", Str("red"), 0)).rejected().code(),
            v1::REJECTION_CODE_UNKNOWN_FIELD);
  EXPECT_EQ(PushOne(a_, a_.SetField(h, kVillage, "housing_area", Str("big"), 0)).rejected().code(),
            v1::REJECTION_CODE_INVALID_VALUE);
  EXPECT_EQ(
      PushOne(a_, a_.SetField(h, kVillage, "main_poverty_cause", Int(99), 0)).rejected().code(),
      v1::REJECTION_CODE_INVALID_VALUE);
  EXPECT_EQ(
      PushOne(a_, a_.SetField(h, kVillage, "head_name", v1::FieldValue(), 1)).rejected().code(),
      v1::REJECTION_CODE_INVALID_VALUE)
      << "head_name cannot be cleared";
  EXPECT_TRUE(PushOne(a_, a_.SetField(h, kVillage, "phone", v1::FieldValue(), 0)).has_accepted())
      << "an optional field can be cleared";
}

TEST_F(MergeRulesTest, MembersAreAddedOnceUpdatedLikeFieldsAndRemovedKeepingTheRecord) {
  const std::string h = NewHousehold();
  const std::string m = NewUuid();
  ASSERT_TRUE(PushOne(a_, a_.AddMember(h, kVillage, m, "李四")).has_accepted());
  EXPECT_EQ(PushOne(b_, b_.AddMember(h, kVillage, m, "李四")).rejected().code(),
            v1::REJECTION_CODE_SUBJECT_EXISTS);
  EXPECT_EQ(ReadHousehold(env_.store(), h)->member_ids_size(), 1);

  // Concurrent member edits conflict exactly like household fields, and the
  // household lists the member's conflict.
  v1::Event ua = a_.UpdateMember(h, kVillage, m, "education", Str("初中"), 0);
  env_.clock().Advance(absl::Seconds(1));
  v1::Event ub = b_.UpdateMember(h, kVillage, m, "education", Str("高中"), 0);
  PushOne(a_, ua);
  v1::PushResult rb = PushOne(b_, ub);
  ASSERT_TRUE(rb.has_conflict_recorded());
  const v1::Conflict c = *ReadConflict(env_.store(), rb.conflict_recorded().conflict_ids(0));
  EXPECT_EQ(c.subject().kind(), v1::SUBJECT_KIND_MEMBER);
  EXPECT_EQ(c.subject().id(), m);
  EXPECT_EQ(ReadHousehold(env_.store(), h)->open_conflict_ids(0), c.id());
  // The conflict is resolved through the household.
  ASSERT_TRUE(PushOne(township_, township_.Resolve(HouseholdRef(h), kVillage, c.id(), [](auto& x) {
                x.set_chosen_side(0);
              })).has_accepted());

  // Unknown member.
  EXPECT_EQ(PushOne(a_, a_.UpdateMember(h, kVillage, NewUuid(), "education", Str("x"), 0))
                .rejected()
                .code(),
            v1::REJECTION_CODE_UNKNOWN_REFERENCE);

  // Removal keeps the record; a second removal is no conflict.
  v1::Event remove_a = a_.Make(HouseholdRef(h), kVillage, [&](v1::Event& e) {
    e.mutable_member_removed()->set_member_id(m);
    e.mutable_member_removed()->set_reason(v1::MEMBER_REMOVAL_REASON_MOVED_OUT);
  });
  ASSERT_TRUE(PushOne(a_, remove_a).has_accepted());
  const auto member =
      ReadProjection<v1::Member>(env_.store(), domain::keys::Member("household/" + h, m));
  ASSERT_TRUE(member.has_value());
  EXPECT_TRUE(member->removed());
  EXPECT_EQ(ReadHousehold(env_.store(), h)->member_ids_size(), 0);
  // Still correctable afterwards (so an update racing a removal lands alike).
  EXPECT_TRUE(
      PushOne(b_, b_.UpdateMember(h, kVillage, m, "health", Str("健康"), 0)).has_accepted());
}

TEST_F(MergeRulesTest, PlansKeepEveryRevisionAndConcurrentRevisionsConflict) {
  const std::string h = NewHousehold();
  v1::PushResult r = PushOne(a_, a_.RevisePlan(h, kVillage, 2024, 0, {"i1", "i2"}));
  ASSERT_TRUE(r.has_accepted());
  ASSERT_TRUE(PushOne(a_, a_.RevisePlan(h, kVillage, 2024, 1, {"i1", "i3"})).has_accepted());
  // Two devices revise version 2 concurrently.
  v1::Event pb = b_.RevisePlan(h, kVillage, 2024, 2, {"i1", "i4"});
  env_.clock().Advance(absl::Seconds(1));
  v1::Event pc = c_.RevisePlan(h, kVillage, 2024, 2, {"i5"});
  ASSERT_TRUE(PushOne(c_, pc).has_accepted());
  v1::PushResult rb = PushOne(b_, pb);
  ASSERT_TRUE(rb.has_conflict_recorded());
  const std::string plan_id = absl::StrCat(h, "/2024");
  auto plan = ReadProjection<v1::Plan>(env_.store(), domain::keys::Plan("household/" + h, plan_id));
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->revisions(), 4u);
  EXPECT_EQ(plan->version(), 3u);
  ASSERT_EQ(plan->items_size(), 1);
  EXPECT_EQ(plan->items(0).item_id(), "i5") << "c's revision has the higher HLC";
  const v1::Conflict c = *ReadConflict(env_.store(), rb.conflict_recorded().conflict_ids(0));
  EXPECT_EQ(c.kind(), v1::CONFLICT_KIND_PLAN_CONCURRENT);
  EXPECT_EQ(c.field(), "items");

  // A measure against an item of the losing revision still counts.
  auto deliver = [&](const std::string& item) {
    return a_.Make(HouseholdRef(h), kVillage, [&](v1::Event& e) {
      v1::MeasureDelivered* m = e.mutable_measure_delivered();
      m->set_plan_id(plan_id);
      m->set_item_id(item);
      m->set_amount_fen(5000);
      m->mutable_delivered_on()->set_year(2024);
      m->mutable_delivered_on()->set_month(6);
      m->mutable_delivered_on()->set_day(1);
    });
  };
  EXPECT_TRUE(PushOne(a_, deliver("i4")).has_accepted());
  EXPECT_EQ(PushOne(a_, deliver("nope")).rejected().code(), v1::REJECTION_CODE_UNKNOWN_REFERENCE);
  plan = ReadProjection<v1::Plan>(env_.store(), domain::keys::Plan("household/" + h, plan_id));
  EXPECT_EQ(plan->delivered_fen().at("i4"), 5000);

  // Resolving by choosing b's revision.
  const uint32_t b_side = c.sides(0).event_id() == pb.event_id() ? 0 : 1;
  ASSERT_TRUE(PushOne(township_, township_.Resolve(HouseholdRef(h), kVillage, c.id(), [&](auto& x) {
                x.set_chosen_side(b_side);
              })).has_accepted());
  plan = ReadProjection<v1::Plan>(env_.store(), domain::keys::Plan("household/" + h, plan_id));
  EXPECT_EQ(plan->items(1).item_id(), "i4");
  EXPECT_EQ(plan->version(), 4u);
}

TEST_F(MergeRulesTest, InsertOnlyBodiesWriteNoFieldsAndCorrectionsKeepTheOriginal) {
  const std::string h = NewHousehold();
  v1::Event visit = a_.Visit(HouseholdRef(h), kVillage);
  v1::PushResult r = PushOne(a_, visit);
  ASSERT_TRUE(r.has_accepted());
  EXPECT_EQ(Stored(r.accepted().offset()).writes().size(), 0);
  const uint64_t version = ReadHousehold(env_.store(), h)->version();

  v1::Event correction = a_.Make(HouseholdRef(h), kVillage, [&](v1::Event& e) {
    v1::VisitCorrected* c = e.mutable_visit_corrected();
    c->set_original_event_id(visit.event_id());
    *c->mutable_corrected() = visit.visit_recorded();
    c->mutable_corrected()->set_notes("補充：已落實養殖補貼");
    c->set_reason("補記");
  });
  ASSERT_TRUE(PushOne(a_, correction).has_accepted());
  EXPECT_EQ(ReadHousehold(env_.store(), h)->version(), version);
  v1::GetHistoryRequest history;
  *history.mutable_subject() = HouseholdRef(h);
  ASSERT_OK_AND_ASSIGN(v1::GetHistoryResponse events,
                       env_.engine().GetHistory(Env::AllScope(), history));
  ASSERT_EQ(events.events_size(), 3);  // registration, visit, correction
  EXPECT_EQ(Decoded(events.events(1)).event().event_id(), visit.event_id());

  // A correction of something that is not a visit, or not there.
  v1::Event bad = a_.Make(HouseholdRef(h), kVillage, [&](v1::Event& e) {
    v1::VisitCorrected* c = e.mutable_visit_corrected();
    c->set_original_event_id(NewUuid());
    c->set_withdrawn(true);
    c->set_reason("錯錄");
  });
  EXPECT_EQ(PushOne(a_, bad).rejected().code(), v1::REJECTION_CODE_UNKNOWN_REFERENCE);
  const std::string other = NewHousehold();
  v1::Event elsewhere = a_.Make(HouseholdRef(other), kVillage, [&](v1::Event& e) {
    v1::VisitCorrected* c = e.mutable_visit_corrected();
    c->set_original_event_id(visit.event_id());
    c->set_withdrawn(true);
    c->set_reason("錯錄");
  });
  EXPECT_EQ(PushOne(a_, elsewhere).rejected().code(), v1::REJECTION_CODE_SUBJECT_MISMATCH);
}

TEST_F(MergeRulesTest, AHouseholdIsRegisteredOnceAndItsNumberIsUnique) {
  const std::string h = NewUuid();
  ASSERT_TRUE(PushOne(a_, a_.Register(h, kVillage, "DUP-1")).has_accepted());
  EXPECT_EQ(PushOne(b_, b_.Register(h, kVillage, "DUP-2")).rejected().code(),
            v1::REJECTION_CODE_SUBJECT_EXISTS);
  v1::PushResult r = PushOne(b_, b_.Register(NewUuid(), kVillage, "DUP-1"));
  EXPECT_EQ(r.rejected().code(), v1::REJECTION_CODE_SUBJECT_EXISTS);
  EXPECT_EQ(r.rejected().field(), "household_registered.household_number");
}

TEST_F(MergeRulesTest, LinksStartEndAndReplaceAndOnlyCountyStaffManageThem) {
  const std::string h = NewHousehold();
  auto start = [&](SimDevice& d, const std::string& link, const std::string& cadre,
                   const std::string& replaces) {
    return d.Make(HouseholdRef(h), kVillage, [&](v1::Event& e) {
      v1::LinkStarted* l = e.mutable_link_started();
      l->set_link_id(link);
      l->set_cadre_id(cadre);
      l->set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
      l->mutable_valid_from()->set_year(2024);
      l->mutable_valid_from()->set_month(1);
      l->mutable_valid_from()->set_day(1);
      if (!replaces.empty()) {
        l->set_replaces_link_id(replaces);
        l->set_reason("調離");
      }
    });
  };
  auto end = [&](SimDevice& d, const std::string& link) {
    return d.Make(HouseholdRef(h), kVillage, [&](v1::Event& e) {
      v1::LinkEnded* l = e.mutable_link_ended();
      l->set_link_id(link);
      l->mutable_valid_to()->set_year(2024);
      l->mutable_valid_to()->set_month(3);
      l->mutable_valid_to()->set_day(31);
      l->set_reason(v1::LINK_END_REASON_REPLACED);
    });
  };
  const std::string first = NewUuid();
  const std::string second = NewUuid();
  // A holder must be a cadre the domain knows (folded from UserUpserted).
  v1::PushResult unknown = PushOne(county_, start(county_, first, "cadre-a", ""));
  EXPECT_EQ(unknown.rejected().code(), v1::REJECTION_CODE_UNKNOWN_REFERENCE);
  EXPECT_EQ(unknown.rejected().field(), "link_started.cadre_id");
  UpsertUser("township-1", v1::ROLE_TOWNSHIP_STAFF);
  v1::PushResult staff = PushOne(county_, start(county_, first, "township-1", ""));
  EXPECT_EQ(staff.rejected().code(), v1::REJECTION_CODE_INVALID_VALUE);
  EXPECT_EQ(staff.rejected().field(), "link_started.cadre_id");
  UpsertUser("cadre-a", v1::ROLE_CADRE);
  UpsertUser("cadre-b", v1::ROLE_CADRE);
  EXPECT_EQ(PushOne(a_, start(a_, first, "cadre-a", "")).rejected().code(),
            v1::REJECTION_CODE_PERMISSION_DENIED);
  ASSERT_TRUE(PushOne(county_, start(county_, first, "cadre-a", "")).has_accepted());
  EXPECT_EQ(PushOne(county_, start(county_, first, "cadre-a", "")).rejected().code(),
            v1::REJECTION_CODE_SUBJECT_EXISTS);
  ASSERT_OK_AND_ASSIGN(
      sync::PushOutcome outcome,
      env_.Push(county_, {end(county_, first), start(county_, second, "cadre-b", first)}));
  EXPECT_TRUE(outcome.response.results(0).has_accepted());
  EXPECT_TRUE(outcome.response.results(1).has_accepted());
  EXPECT_EQ(PushOne(county_, end(county_, first)).rejected().code(),
            v1::REJECTION_CODE_ALREADY_DECIDED);

  domain::DomainQueries queries(&env_.engine().reader(), 1000, env_.clock().AsFunction());
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Link> a_links,
                       queries.LinksOfHolder(true, "cadre-a", false));
  ASSERT_EQ(a_links.size(), 1u);
  EXPECT_EQ(a_links[0].replaced_by_link_id(), second);
  EXPECT_FALSE(a_links[0].active()) << "ended on 2024-03-31, before the receipt date";
  ASSERT_OK_AND_ASSIGN(a_links, queries.LinksOfHolder(true, "cadre-a", true));
  EXPECT_TRUE(a_links.empty());
  ASSERT_OK_AND_ASSIGN(std::vector<v1::Link> b_links, queries.LinksOfHolder(true, "cadre-b", true));
  ASSERT_EQ(b_links.size(), 1u);
  EXPECT_EQ(b_links[0].replaces_link_id(), first);
  EXPECT_EQ(b_links[0].target().id(), h);
}

}  // namespace
}  // namespace fieldsync::test
