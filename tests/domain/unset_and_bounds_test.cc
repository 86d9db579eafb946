// Writes against never-set values (issue 7 item 1) and the number and date
// bounds of DomainOptions (item 13), through the real engine and store, and
// ShuanglianPolicy::Validate with non-default options.
#include <cstdint>
#include <limits>
#include <set>

#include "absl/strings/match.h"
#include "absl/time/civil_time.h"
#include "domain/shuanglian_policy.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

constexpr char kVillage[] = "620102001001";
constexpr uint64_t kMaxBase = std::numeric_limits<uint64_t>::max();

class UnsetBaseTest : public ::testing::Test {
 protected:
  UnsetBaseTest()
      : a_(env_.AddDevice("dev-a", "cadre-a", v1::ROLE_CADRE)),
        b_(env_.AddDevice("dev-b", "cadre-b", v1::ROLE_CADRE)),
        township_(env_.AddDevice("dev-t", "township-1", v1::ROLE_TOWNSHIP_STAFF)) {}

  std::string NewHousehold() {
    const std::string id = NewUuid();
    EXPECT_OK(env_.Push(a_, {a_.Register(id, kVillage, absl::StrCat("U", ++n_))}).status());
    return id;
  }

  v1::PushResult PushOne(SimDevice& device, const v1::Event& event) {
    absl::StatusOr<sync::PushOutcome> outcome = env_.Push(device, {event});
    EXPECT_TRUE(outcome.ok()) << outcome.status();
    if (!outcome.ok()) return {};
    return outcome->response.results(0);
  }

  std::set<std::string> SideEvents(const v1::Conflict& conflict) {
    std::set<std::string> ids;
    for (const v1::ConflictSide& side : conflict.sides()) ids.insert(side.event_id());
    return ids;
  }

  Env env_;
  SimDevice& a_;
  SimDevice& b_;
  SimDevice& township_;
  int n_ = 0;
};

TEST_F(UnsetBaseTest, AStaleWriteAndAFreshOneToANeverSetFieldEndAliveInEitherOrder) {
  for (bool stale_first : {true, false}) {
    SCOPED_TRACE(stale_first ? "stale first" : "fresh first");
    const std::string h = NewHousehold();
    // a claims to have seen version 5 of a field nobody ever set; b writes
    // it from "never set", later (higher HLC).
    v1::Event stale = a_.SetField(h, kVillage, "phone", Str("a"), 5);
    env_.clock().Advance(absl::Seconds(1));
    v1::Event fresh = b_.SetField(h, kVillage, "phone", Str("b"), 0);
    v1::PushResult first = stale_first ? PushOne(a_, stale) : PushOne(b_, fresh);
    v1::PushResult second = stale_first ? PushOne(b_, fresh) : PushOne(a_, stale);
    ASSERT_TRUE(second.has_conflict_recorded()) << second.ShortDebugString();
    EXPECT_EQ(first.has_conflict_recorded(), stale_first) << first.ShortDebugString();

    const v1::Household state = *ReadHousehold(env_.store(), h);
    EXPECT_EQ(state.fields().at("phone").value().string_value(), "b") << "b's HLC is higher";
    ASSERT_EQ(state.open_conflict_ids_size(), 1);
    const v1::Conflict c = *ReadConflict(env_.store(), state.open_conflict_ids(0));
    EXPECT_EQ(SideEvents(c), (std::set<std::string>{stale.event_id(), fresh.event_id()}))
        << "the same sides in either order: " << c.ShortDebugString();
    EXPECT_EQ(c.sides(c.winner_side()).event_id(), fresh.event_id());
  }
}

TEST_F(UnsetBaseTest, ABaseAheadOfAnExistingValueIsAConcurrentWrite) {
  const std::string h = NewHousehold();
  ASSERT_TRUE(PushOne(a_, a_.SetField(h, kVillage, "phone", Str("a"), 0)).has_accepted());
  env_.clock().Advance(absl::Seconds(1));
  const v1::PushResult ahead = PushOne(b_, b_.SetField(h, kVillage, "phone", Str("b"), kMaxBase));
  ASSERT_TRUE(ahead.has_conflict_recorded()) << ahead.ShortDebugString();
  const v1::Conflict c = *ReadConflict(env_.store(), ahead.conflict_recorded().conflict_ids(0));
  EXPECT_EQ(c.base_version(), kMaxBase);
  EXPECT_EQ(c.sides_size(), 2);
  EXPECT_EQ(ReadHousehold(env_.store(), h)->fields().at("phone").version(), 2u);
}

TEST_F(UnsetBaseTest, AConflictAgainstUnsetResolvedByNoValueClearsTheField) {
  const std::string h = NewHousehold();
  const v1::PushResult stale = PushOne(a_, a_.SetField(h, kVillage, "phone", Str("a"), 3));
  ASSERT_TRUE(stale.has_conflict_recorded()) << stale.ShortDebugString();
  const std::string id = stale.conflict_recorded().conflict_ids(0);
  const v1::Conflict c = *ReadConflict(env_.store(), id);
  ASSERT_EQ(c.sides_size(), 1) << "no side stands for the unset state";
  EXPECT_EQ(c.winner_side(), 0u);

  const v1::PushResult resolved =
      PushOne(township_, township_.Resolve(HouseholdRef(h), kVillage, id,
                                           [](v1::ConflictResolved& r) { r.mutable_value(); }));
  ASSERT_TRUE(resolved.has_accepted()) << resolved.ShortDebugString();
  const v1::Household state = *ReadHousehold(env_.store(), h);
  EXPECT_EQ(state.fields().at("phone").value().value_case(), v1::FieldValue::VALUE_NOT_SET);
  EXPECT_EQ(state.open_conflict_ids_size(), 0);
}

TEST_F(UnsetBaseTest, ARevisionWithABaseOfAPlanThatDoesNotExistCreatesItWithAConflict) {
  const std::string h = NewHousehold();
  const v1::PushResult r = PushOne(a_, a_.RevisePlan(h, kVillage, 2024, 7, {"i1"}));
  ASSERT_TRUE(r.has_conflict_recorded()) << r.ShortDebugString();
  const v1::Conflict c = *ReadConflict(env_.store(), r.conflict_recorded().conflict_ids(0));
  EXPECT_EQ(c.kind(), v1::CONFLICT_KIND_PLAN_CONCURRENT);
  EXPECT_EQ(c.base_version(), 7u);
  ASSERT_EQ(c.sides_size(), 1);
  EXPECT_EQ(c.sides(0).plan().items_size(), 1);
  // Deliveries against its item are accepted: the plan exists.
  const v1::PushResult delivered =
      PushOne(a_, a_.Make(HouseholdRef(h), kVillage, [&](v1::Event& e) {
        v1::MeasureDelivered* m = e.mutable_measure_delivered();
        m->set_plan_id(absl::StrCat(h, "/2024"));
        m->set_item_id("i1");
        m->set_amount_fen(100);
        m->mutable_delivered_on()->set_year(2024);
        m->mutable_delivered_on()->set_month(5);
        m->mutable_delivered_on()->set_day(1);
      }));
  EXPECT_TRUE(delivered.has_accepted()) << delivered.ShortDebugString();
}

// ShuanglianPolicy::Validate with its own options: the bounds are the options'.
// Event ids are unique per signing device only: two devices' concurrent
// writes may carry one id, and the conflict must still name the right winner
// (it once matched sides by the bare event id and named the first device).
TEST_F(UnsetBaseTest, ConcurrentWritesOfTwoDevicesWithOneEventIdNameTheRightWinner) {
  const std::string h = NewHousehold();
  const v1::Event first = a_.SetField(h, kVillage, "phone", Str("a"), 0);
  ASSERT_TRUE(PushOne(a_, first).has_accepted());
  env_.clock().Advance(absl::Seconds(1));
  v1::Event second = b_.SetField(h, kVillage, "phone", Str("b"), 0);
  second.set_event_id(first.event_id());
  b_.Sign(second);
  const v1::PushResult result = PushOne(b_, second);
  ASSERT_TRUE(result.has_conflict_recorded()) << result.ShortDebugString();

  const v1::Household state = *ReadHousehold(env_.store(), h);
  EXPECT_EQ(state.fields().at("phone").value().string_value(), "b") << "b's HLC is higher";
  ASSERT_EQ(state.open_conflict_ids_size(), 1);
  const v1::Conflict c = *ReadConflict(env_.store(), state.open_conflict_ids(0));
  ASSERT_EQ(c.sides_size(), 2) << c.ShortDebugString();
  EXPECT_EQ(c.sides(0).event_id(), c.sides(1).event_id());
  EXPECT_EQ(c.sides(c.winner_side()).device_id(), "dev-b") << c.ShortDebugString();
  EXPECT_EQ(c.sides(c.winner_side()).field_value().string_value(), "b");
}

class BoundsTest : public ::testing::Test {
 protected:
  static v1::Event Visit(absl::Time start) {
    using google::protobuf::util::TimeUtil;
    v1::Event e;
    e.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    e.mutable_subject()->set_id(NewUuid());
    e.set_area_code(kVillage);
    v1::VisitRecorded* v = e.mutable_visit_recorded();
    *v->mutable_start_time() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(start));
    *v->mutable_end_time() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(start) + 1);
    v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
    return e;
  }

  static v1::Event Income(int64_t amount, int year) {
    v1::Event e;
    e.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    e.mutable_subject()->set_id(NewUuid());
    e.set_area_code(kVillage);
    v1::IncomeObserved* o = e.mutable_income_observed();
    o->set_year(year);
    o->set_period(v1::INCOME_PERIOD_YEAR);
    o->set_category(v1::INCOME_CATEGORY_WAGES);
    o->set_amount_fen(amount);
    return e;
  }

  static absl::Time Cst(int y, int m, int d, int hh, int mm, int ss) {
    return absl::FromCivil(absl::CivilSecond(y, m, d, hh, mm, ss), absl::FixedTimeZone(8 * 3600));
  }

  sync::Author cadre_{"cadre-a", v1::ROLE_CADRE, "dev-a", "", ""};
};

TEST_F(BoundsTest, TheYearWindowIsInChinaStandardTimeInclusive) {
  domain::ShuanglianPolicy policy;  // 2000..2100.
  EXPECT_FALSE(policy.Validate(Visit(Cst(2000, 1, 1, 0, 0, 0)), cadre_).has_value());
  EXPECT_FALSE(policy.Validate(Visit(Cst(2100, 12, 31, 23, 59, 58)), cadre_).has_value());
  for (absl::Time outside : {Cst(1999, 12, 31, 23, 59, 59), Cst(2101, 1, 1, 0, 0, 0)}) {
    std::optional<sync::Rejection> r = policy.Validate(Visit(outside), cadre_);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->code, v1::REJECTION_CODE_INVALID_VALUE);
    EXPECT_EQ(r->field, "visit_recorded.start_time");
  }
}

TEST_F(BoundsTest, TheOptionsSetTheBounds) {
  domain::DomainOptions options;
  options.max_amount_fen = 10;
  options.min_year = 2020;
  options.max_year = 2022;
  domain::ShuanglianPolicy policy(options);
  EXPECT_FALSE(policy.Validate(Income(10, 2020), cadre_).has_value());
  std::optional<sync::Rejection> r = policy.Validate(Income(11, 2020), cadre_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->field, "income_observed.amount_fen");
  EXPECT_TRUE(absl::StrContains(r->message, "bound of 10 fen")) << r->message;
  r = policy.Validate(Income(1, 2023), cadre_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->field, "income_observed.year");
  EXPECT_TRUE(absl::StrContains(r->message, "2020..2022")) << r->message;
  r = policy.Validate(Income(-1, 2021), cadre_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->field, "income_observed.amount_fen");
}

}  // namespace
}  // namespace fieldsync::test
