// Issue 7 items 1 and 13 through the public gRPC surface: writes against a
// value that was never set (a base version other than 0, up to 2^64-1) get a
// per-event answer and a conflict for review instead of killing the server,
// the phone's retry answers the same; money amounts and dates out of the
// configured bounds are rejected naming the field and the bound; a plan
// item's delivered total never wraps.
#include <cstdint>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/sync_service.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr uint64_t kMaxBase = std::numeric_limits<uint64_t>::max();
constexpr int64_t kMaxFen = std::numeric_limits<int64_t>::max();
constexpr char kMember[] = "22222222-2222-4222-8222-000000000001";

class MergeDefectsTest : public SyncWorld {
 public:  // For the table-driven cases' lambdas.
  // Pushes `events` as `device` and returns the per-event results; the call
  // itself must succeed.
  std::vector<v1::PushResult> PushAll(const TestDevice& device,
                                      const std::vector<v1::Event>& events) {
    v1::PushResponse response;
    grpc::Status status = Push(device, events, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), static_cast<int>(events.size()));
    return {response.results().begin(), response.results().end()};
  }

  v1::PushResult PushOne(const TestDevice& device, const v1::Event& event) {
    std::vector<v1::PushResult> results = PushAll(device, {event});
    return results.empty() ? v1::PushResult() : results[0];
  }

  v1::GetHouseholdResponse GetHousehold(const std::string& id) {
    v1::GetHouseholdRequest request;
    request.set_id(id);
    v1::GetHouseholdResponse response;
    auto context = ServiceHarness::Context(hq_token());
    grpc::Status status = query().GetHousehold(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  std::optional<v1::Conflict> ConflictOf(const std::string& household, const std::string& id) {
    const v1::GetHouseholdResponse state = GetHousehold(household);
    for (const v1::Conflict& conflict : state.conflicts()) {
      if (conflict.id() == id) return conflict;
    }
    return std::nullopt;
  }

  // The server still serves: a fresh visit is accepted.
  void ExpectServing() {
    v1::PushResult visit = PushOne(phone(), phone().Visit(kH1, kV1));
    EXPECT_TRUE(visit.has_accepted()) << visit.ShortDebugString();
  }

  v1::Event AddMember() {
    return phone().Make(Household(kH1), kV1, [](v1::Event& e) {
      v1::MemberAdded* m = e.mutable_member_added();
      m->set_member_id(kMember);
      m->set_name("李四");
      m->set_relation(v1::MEMBER_RELATION_HEAD);
    });
  }

  v1::Event UpdateMember(const std::string& field, const std::string& value, uint64_t base) {
    return phone().Make(Household(kH1), kV1, [&](v1::Event& e) {
      v1::MemberUpdated* m = e.mutable_member_updated();
      m->set_member_id(kMember);
      v1::FieldPatch* p = m->add_patches();
      p->set_field(field);
      *p->mutable_value() = Text(value);
      p->set_base_version(base);
    });
  }

  v1::Event RevisePlan(int year, uint64_t base, int64_t cost_fen = 100000) {
    return phone().Make(Household(kH1), kV1, [&](v1::Event& e) {
      v1::PlanRevised* p = e.mutable_plan_revised();
      p->set_plan_id(absl::StrCat(kH1, "/", year));
      p->set_kind(v1::PLAN_KIND_HOUSEHOLD_EXIT);
      p->set_year(year);
      p->set_base_version(base);
      v1::PlanItem* item = p->add_items();
      item->set_item_id("i1");
      item->set_category(v1::MEASURE_CATEGORY_INDUSTRY);
      item->set_content("發展養殖");
      item->set_cost_fen(cost_fen);
      item->set_year(year);
    });
  }

  v1::Event Deliver(int year, int64_t amount_fen, int delivered_year = 2024) {
    return phone().Make(Household(kH1), kV1, [&](v1::Event& e) {
      v1::MeasureDelivered* m = e.mutable_measure_delivered();
      m->set_plan_id(absl::StrCat(kH1, "/", year));
      m->set_item_id("i1");
      m->set_amount_fen(amount_fen);
      m->mutable_delivered_on()->set_year(delivered_year);
      m->mutable_delivered_on()->set_month(2);
      m->mutable_delivered_on()->set_day(20);
    });
  }

  v1::Event Income(int64_t amount_fen, int year = 2023) {
    return phone().Make(Household(kH1), kV1, [&](v1::Event& e) {
      v1::IncomeObserved* o = e.mutable_income_observed();
      o->set_year(year);
      o->set_period(v1::INCOME_PERIOD_YEAR);
      o->set_category(v1::INCOME_CATEGORY_WAGES);
      o->set_amount_fen(amount_fen);
    });
  }

  // A conflict "against unset": open, the claimed base, the write its only
  // side and the winner.
  // `event_id` is the pushed event's (a result's position names its event).
  void ExpectConflictAgainstUnset(const v1::PushResult& result, const std::string& event_id,
                                  const std::string& field, uint64_t base) {
    ASSERT_TRUE(result.has_conflict_recorded()) << result.ShortDebugString();
    ASSERT_EQ(result.conflict_recorded().conflict_ids_size(), 1);
    std::optional<v1::Conflict> conflict =
        ConflictOf(kH1, result.conflict_recorded().conflict_ids(0));
    ASSERT_TRUE(conflict.has_value()) << "the conflict is listed with the household";
    EXPECT_TRUE(conflict->open());
    EXPECT_EQ(conflict->field(), field);
    EXPECT_EQ(conflict->base_version(), base);
    ASSERT_EQ(conflict->sides_size(), 1) << conflict->ShortDebugString();
    EXPECT_EQ(conflict->sides(0).event_id(), event_id);
    EXPECT_EQ(conflict->winner_side(), 0u);
  }

  // The retry of `events` (a phone that lost the answer) answers each as a
  // duplicate of the original offset.
  void ExpectRetryAnswersTheSame(const TestDevice& device, const std::vector<v1::Event>& events,
                                 const std::vector<v1::PushResult>& first) {
    std::vector<v1::PushResult> again = PushAll(device, events);
    ASSERT_EQ(again.size(), first.size());
    for (size_t i = 0; i < first.size(); ++i) {
      ASSERT_TRUE(again[i].has_duplicate()) << again[i].ShortDebugString();
      const uint64_t offset = first[i].has_accepted() ? first[i].accepted().offset()
                                                      : first[i].conflict_recorded().offset();
      EXPECT_EQ(again[i].duplicate().original_offset(), offset);
    }
  }
};

TEST_F(MergeDefectsTest, PatchOfANeverSetHouseholdFieldWithABaseIsAConflictAgainstUnset) {
  const std::vector<v1::Event> events = {
      phone().SetField(kH1, kV1, "phone", Text("13900000001"), 5),
      phone().SetField(kH1, kV1, "housing_structure", Text("磚混"), kMaxBase)};
  const std::vector<v1::PushResult> first = PushAll(phone(), events);
  ASSERT_EQ(first.size(), 2u);
  ExpectConflictAgainstUnset(first[0], events[0].event_id(), "phone", 5);
  ExpectConflictAgainstUnset(first[1], events[1].event_id(), "housing_structure", kMaxBase);
  // The patch holds the value: nothing the phone sent is lost.
  const v1::Household household = GetHousehold(kH1).household();
  EXPECT_EQ(household.fields().at("phone").value().string_value(), "13900000001");
  EXPECT_EQ(household.fields().at("phone").version(), 1u);
  EXPECT_EQ(household.fields().at("housing_structure").version(), 1u);

  ExpectRetryAnswersTheSame(phone(), events, first);
  ExpectServing();
}

TEST_F(MergeDefectsTest, PatchOfANeverSetMemberFieldWithABaseIsAConflictAgainstUnset) {
  ASSERT_TRUE(PushOne(phone(), AddMember()).has_accepted());
  const std::vector<v1::Event> events = {UpdateMember("education", "初中", 3),
                                         UpdateMember("health", "健康", kMaxBase)};
  const std::vector<v1::PushResult> first = PushAll(phone(), events);
  ASSERT_EQ(first.size(), 2u);
  ExpectConflictAgainstUnset(first[0], events[0].event_id(), "education", 3);
  ExpectConflictAgainstUnset(first[1], events[1].event_id(), "health", kMaxBase);
  const v1::GetHouseholdResponse state = GetHousehold(kH1);
  ASSERT_EQ(state.members_size(), 1);
  EXPECT_EQ(state.members(0).fields().at("education").value().string_value(), "初中");

  ExpectRetryAnswersTheSame(phone(), events, first);
  ExpectServing();
}

TEST_F(MergeDefectsTest, NewPlanWithABaseIsCreatedWithAConflictAgainstUnset) {
  const std::vector<v1::Event> events = {RevisePlan(2024, 7), RevisePlan(2025, kMaxBase)};
  const std::vector<v1::PushResult> first = PushAll(phone(), events);
  ASSERT_EQ(first.size(), 2u);
  ExpectConflictAgainstUnset(first[0], events[0].event_id(), "items", 7);
  ExpectConflictAgainstUnset(first[1], events[1].event_id(), "items", kMaxBase);
  const v1::GetHouseholdResponse state = GetHousehold(kH1);
  ASSERT_EQ(state.plans_size(), 2);
  for (const v1::Plan& plan : state.plans()) {
    EXPECT_EQ(plan.version(), 1u);
    ASSERT_EQ(plan.items_size(), 1);
  }

  ExpectRetryAnswersTheSame(phone(), events, first);
  ExpectServing();
}

TEST_F(MergeDefectsTest, ALaterSequentialWriteJoinsTheConflictAgainstUnsetAndItResolves) {
  const v1::PushResult stale = PushOne(phone(), phone().SetField(kH1, kV1, "phone", Text("1"), 9));
  ASSERT_TRUE(stale.has_conflict_recorded()) << stale.ShortDebugString();
  const std::string id = stale.conflict_recorded().conflict_ids(0);
  // The tablet writes from "never set" (base 0): concurrent with the stale
  // write, it joins the open conflict.
  const v1::PushResult fresh =
      PushOne(tablet(), tablet().SetField(kH1, kV1, "phone", Text("2"), 0));
  ASSERT_TRUE(fresh.has_conflict_recorded()) << fresh.ShortDebugString();
  EXPECT_EQ(fresh.conflict_recorded().conflict_ids(0), id);
  ASSERT_EQ(ConflictOf(kH1, id)->sides_size(), 2);

  // Township staff settle it by a value.
  const v1::PushResult resolved =
      PushOne(tablet(), tablet().Make(Household(kH1), kV1, [&](v1::Event& e) {
        e.mutable_conflict_resolved()->set_conflict_id(id);
        *e.mutable_conflict_resolved()->mutable_value() = Text("3");
      }));
  ASSERT_TRUE(resolved.has_accepted()) << resolved.ShortDebugString();
  EXPECT_FALSE(ConflictOf(kH1, id).has_value()) << "closed conflicts leave the household";
  EXPECT_EQ(GetHousehold(kH1).household().fields().at("phone").value().string_value(), "3");
}

struct BoundCase {
  std::string name;
  std::function<v1::Event(MergeDefectsTest&)> make;
  std::string field;
  std::vector<std::string> message_has;
};

TEST_F(MergeDefectsTest, NumbersAndDatesOutOfBoundsAreRejectedNamingTheFieldAndTheBound) {
  ASSERT_TRUE(PushOne(phone(), RevisePlan(2024, 0)).has_accepted());
  const std::vector<BoundCase> cases = {
      {"measure of 2^63-1 fen",
       [](MergeDefectsTest& t) { return t.Deliver(2024, kMaxFen); },
       "measure_delivered.amount_fen",
       {"9223372036854775807", "100000000", "validation.max_amount_fen"}},
      {"income of 2^63-1 fen",
       [](MergeDefectsTest& t) { return t.Income(kMaxFen); },
       "income_observed.amount_fen",
       {"100000000", "validation.max_amount_fen"}},
      {"plan item of 2^63-1 fen",
       [](MergeDefectsTest& t) { return t.RevisePlan(2024, 1, kMaxFen); },
       "plan_revised.items[0].cost_fen",
       {"100000000", "validation.max_amount_fen"}},
      {"visit in the year 9000",
       [](MergeDefectsTest& t) {
         return t.phone().Make(Household(kH1), kV1, [](v1::Event& e) {
           v1::VisitRecorded* v = e.mutable_visit_recorded();
           v->mutable_start_time()->set_seconds(221845435200);  // 9000-01-01 12:00 UTC.
           v->mutable_end_time()->set_seconds(221845435200 + 3600);
           v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
         });
       },
       "visit_recorded.start_time",
       {"9000", "2000..2100", "validation.max_year"}},
      {"delivery in 1999",
       [](MergeDefectsTest& t) { return t.Deliver(2024, 100, 1999); },
       "measure_delivered.delivered_on",
       {"1999", "2000..2100", "validation.min_year"}},
      {"income of 1999",
       [](MergeDefectsTest& t) { return t.Income(100, 1999); },
       "income_observed.year",
       {"1999", "2000..2100"}},
      {"plan for 2101",
       [](MergeDefectsTest& t) { return t.RevisePlan(2101, 0); },
       "plan_revised.year",
       {"2101", "2000..2100"}},
  };
  for (const BoundCase& c : cases) {
    SCOPED_TRACE(c.name);
    const v1::PushResult result = PushOne(phone(), c.make(*this));
    ASSERT_TRUE(result.has_rejected()) << result.ShortDebugString();
    EXPECT_EQ(result.rejected().code(), v1::REJECTION_CODE_INVALID_VALUE);
    EXPECT_EQ(result.rejected().field(), c.field);
    for (const std::string& part : c.message_has) {
      EXPECT_TRUE(absl::StrContains(result.rejected().message(), part))
          << result.rejected().message() << " lacks " << part;
    }
    EXPECT_TRUE(absl::StrContains(result.rejected().message(), c.field))
        << result.rejected().message();
  }
  // At the bounds: accepted.
  EXPECT_TRUE(PushOne(phone(), Deliver(2024, 100000000)).has_accepted());
  EXPECT_TRUE(PushOne(phone(), Income(100000000, 2000)).has_accepted());
  ExpectServing();
}

// A deployment that allows any int64 amount: the delivered total is still
// checked, never wrapped.
class UnboundedAmountTest : public MergeDefectsTest {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_validation()->set_max_amount_fen(static_cast<uint64_t>(kMaxFen));
  }
};

TEST_F(UnboundedAmountTest, ADeliveredTotalPast2To63IsRejectedNotWrapped) {
  ASSERT_TRUE(PushOne(phone(), RevisePlan(2024, 0)).has_accepted());
  ASSERT_TRUE(PushOne(phone(), Deliver(2024, kMaxFen)).has_accepted());
  const v1::PushResult second = PushOne(phone(), Deliver(2024, kMaxFen));
  ASSERT_TRUE(second.has_rejected()) << second.ShortDebugString();
  EXPECT_EQ(second.rejected().code(), v1::REJECTION_CODE_INVALID_VALUE);
  EXPECT_EQ(second.rejected().field(), "measure_delivered.amount_fen");
  EXPECT_TRUE(absl::StrContains(second.rejected().message(), "9223372036854775807"))
      << second.rejected().message();
  const v1::GetHouseholdResponse state = GetHousehold(kH1);
  ASSERT_EQ(state.plans_size(), 1);
  EXPECT_EQ(state.plans(0).delivered_fen().at("i1"), kMaxFen);
  ExpectServing();
}

// The bound is the setting's value.
class SmallAmountBoundTest : public MergeDefectsTest {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_validation()->set_max_amount_fen(1000);
    config.mutable_validation()->set_max_year(2030);
  }
};

TEST_F(SmallAmountBoundTest, TheConfiguredBoundsApply) {
  EXPECT_TRUE(PushOne(phone(), Income(1000)).has_accepted());
  const v1::PushResult over = PushOne(phone(), Income(1001));
  ASSERT_TRUE(over.has_rejected()) << over.ShortDebugString();
  EXPECT_EQ(over.rejected().field(), "income_observed.amount_fen");
  EXPECT_TRUE(absl::StrContains(over.rejected().message(), "bound of 1000 fen"))
      << over.rejected().message();
  const v1::PushResult late = PushOne(phone(), Income(100, 2031));
  ASSERT_TRUE(late.has_rejected()) << late.ShortDebugString();
  EXPECT_EQ(late.rejected().field(), "income_observed.year");
  EXPECT_TRUE(absl::StrContains(late.rejected().message(), "2000..2030"))
      << late.rejected().message();
}

}  // namespace
}  // namespace fieldsync::testing
