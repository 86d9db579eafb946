// DomainQueries and the engine's history query: scope checks, paging,
// filters.
#include "domain/queries.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/sync/sync_test_support.h"

namespace fieldsync::test {
namespace {

constexpr char kVillageA[] = "620102001001";
constexpr char kVillageB[] = "620102001002";
constexpr char kVillageC[] = "620102002001";

sync::Scope Area(std::string prefix) {
  sync::Scope scope;
  scope.area_prefixes = {std::move(prefix)};
  return scope;
}

class QueriesTest : public ::testing::Test {
 protected:
  QueriesTest()
      : a_(env_.AddDevice("dev-a", "cadre-a", v1::ROLE_CADRE)),
        b_(env_.AddDevice("dev-b", "cadre-b", v1::ROLE_CADRE)),
        county_(env_.AddDevice("dev-county", "county-1", v1::ROLE_COUNTY_STAFF)),
        queries_(&env_.engine().reader(), 5, env_.clock().AsFunction()) {}

  std::string Register(const std::string& village, const std::string& number) {
    const std::string id = NewUuid();
    EXPECT_OK(env_.Push(a_, {a_.Register(id, village, number)}).status());
    return id;
  }

  Env env_;
  SimDevice& a_;
  SimDevice& b_;
  SimDevice& county_;
  domain::DomainQueries queries_;
};

TEST_F(QueriesTest, GetHouseholdAnswersStateMembersPlansAndOpenConflictsInScopeOnly) {
  const std::string h = Register(kVillageA, "G1");
  const std::string kept = NewUuid();
  const std::string gone = NewUuid();
  ASSERT_OK(
      env_.Push(a_, {a_.AddMember(h, kVillageA, kept, "甲"), a_.AddMember(h, kVillageA, gone, "乙"),
                     a_.Make(HouseholdRef(h), kVillageA,
                             [&](v1::Event& e) {
                               e.mutable_member_removed()->set_member_id(gone);
                               e.mutable_member_removed()->set_reason(
                                   v1::MEMBER_REMOVAL_REASON_DECEASED);
                             }),
                     a_.RevisePlan(h, kVillageA, 2024, 0, {"i1"}),
                     a_.SetField(h, kVillageA, "phone", Str("1"), 0)})
          .status());
  env_.clock().Advance(absl::Seconds(1));  // b's concurrent write wins.
  ASSERT_OK(env_.Push(b_, {b_.SetField(h, kVillageA, "phone", Str("2"), 0)}).status());

  v1::GetHouseholdRequest by_id;
  by_id.set_id(h);
  ASSERT_OK_AND_ASSIGN(v1::GetHouseholdResponse r, queries_.GetHousehold(Area("620102001"), by_id));
  EXPECT_EQ(r.household().id(), h);
  EXPECT_EQ(r.household().fields().at("phone").version(), 2u);
  ASSERT_EQ(r.members_size(), 1);
  EXPECT_EQ(r.members(0).id(), kept);
  EXPECT_EQ(r.plans_size(), 1);
  ASSERT_EQ(r.conflicts_size(), 1);
  EXPECT_EQ(r.conflicts(0).field(), "phone");

  v1::GetHouseholdRequest by_number;
  by_number.set_household_number("G1");
  ASSERT_OK_AND_ASSIGN(r, queries_.GetHousehold(Area(kVillageA), by_number));
  EXPECT_EQ(r.household().id(), h);

  EXPECT_EQ(queries_.GetHousehold(Area(kVillageC), by_id).status().code(),
            absl::StatusCode::kPermissionDenied);
  sync::Scope named;
  named.subject_keys = {"household/" + h};
  EXPECT_OK(queries_.GetHousehold(named, by_id).status());
  v1::GetHouseholdRequest unknown;
  unknown.set_id(NewUuid());
  EXPECT_EQ(queries_.GetHousehold(Env::AllScope(), unknown).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(queries_.GetHousehold(Env::AllScope(), v1::GetHouseholdRequest()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(QueriesTest, ListHouseholdsPagesByVillageThenNumberAndFiltersByStatus) {
  std::vector<std::string> expected;
  for (int i = 0; i < 7; ++i) Register(kVillageB, absl::StrCat("B", i));
  for (int i = 0; i < 6; ++i) Register(kVillageA, absl::StrCat("A", i));
  Register(kVillageC, "C0");
  for (int i = 0; i < 6; ++i) expected.push_back(absl::StrCat("A", i));
  for (int i = 0; i < 7; ++i) expected.push_back(absl::StrCat("B", i));

  v1::ListHouseholdsRequest request;
  request.set_scope_prefix("620102001");
  std::vector<std::string> numbers;
  int pages = 0;
  do {
    ASSERT_OK_AND_ASSIGN(v1::ListHouseholdsResponse r,
                         queries_.ListHouseholds(Area("620102001"), request));
    EXPECT_LE(r.households_size(), 5);
    for (const v1::Household& h : r.households()) numbers.push_back(h.household_number());
    request.set_page_token(r.next_page_token());
    ++pages;
  } while (!request.page_token().empty());
  EXPECT_EQ(numbers, expected);
  EXPECT_EQ(pages, 3);

  // Move one household on and filter by status.
  v1::GetHouseholdRequest get;
  get.set_household_number("A3");
  ASSERT_OK_AND_ASSIGN(v1::GetHouseholdResponse a3, queries_.GetHousehold(Env::AllScope(), get));
  ASSERT_OK(
      env_.Push(county_, {county_.Confirm(
                             a3.household().id(), kVillageA, "", v1::HOUSEHOLD_STATUS_IDENTIFIED,
                             v1::HOUSEHOLD_STATUS_NOT_EXITED, v1::REVIEW_STAGE_COUNTY_DECISION)})
          .status());
  v1::ListHouseholdsRequest filtered;
  filtered.set_scope_prefix("620102");
  filtered.add_statuses(v1::HOUSEHOLD_STATUS_NOT_EXITED);
  ASSERT_OK_AND_ASSIGN(v1::ListHouseholdsResponse r,
                       queries_.ListHouseholds(Area("6201"), filtered));
  ASSERT_EQ(r.households_size(), 1);
  EXPECT_EQ(r.households(0).household_number(), "A3");

  // Outside the scope: denied; a named scope lists its own households only.
  v1::ListHouseholdsRequest outside;
  outside.set_scope_prefix("620102002");
  EXPECT_EQ(queries_.ListHouseholds(Area(kVillageA), outside).status().code(),
            absl::StatusCode::kPermissionDenied);
  sync::Scope named;
  named.subject_keys = {"household/" + a3.household().id()};
  v1::ListHouseholdsRequest mine;
  mine.set_scope_prefix("620102");
  ASSERT_OK_AND_ASSIGN(r, queries_.ListHouseholds(named, mine));
  ASSERT_EQ(r.households_size(), 1);
  EXPECT_EQ(r.households(0).household_number(), "A3");
}

TEST_F(QueriesTest, ListConflictsListsOldestFirstAndOpenOnlyOnRequest) {
  std::vector<std::string> ids;
  std::vector<std::string> households;
  for (int i = 0; i < 7; ++i) {
    const std::string h = Register(i % 2 ? kVillageA : kVillageB, absl::StrCat("K", i));
    households.push_back(h);
    const std::string village = i % 2 ? kVillageA : kVillageB;
    ASSERT_OK(env_.Push(a_, {a_.SetField(h, village, "phone", Str("a"), 0)}).status());
    ASSERT_OK_AND_ASSIGN(sync::PushOutcome o,
                         env_.Push(b_, {b_.SetField(h, village, "phone", Str("b"), 0)}));
    ids.push_back(o.response.results(0).conflict_recorded().conflict_ids(0));
  }
  // Close the first one.
  SimDevice& township = env_.AddDevice("dev-t", "township-1", v1::ROLE_TOWNSHIP_STAFF);
  ASSERT_OK(env_.Push(township, {township.Resolve(HouseholdRef(households[0]), kVillageB, ids[0],
                                                  [](auto& r) { r.set_chosen_side(0); })})
                .status());

  auto list = [&](bool open_only) {
    v1::ListConflictsRequest request;
    request.set_scope_prefix("620102001");
    request.set_open_only(open_only);
    std::vector<std::string> got;
    do {
      absl::StatusOr<v1::ListConflictsResponse> r =
          queries_.ListConflicts(Area("620102001"), request);
      EXPECT_TRUE(r.ok()) << r.status();
      for (const v1::Conflict& c : r->conflicts()) got.push_back(c.id());
      request.set_page_token(r->next_page_token());
    } while (!request.page_token().empty());
    return got;
  };
  EXPECT_EQ(list(false), ids);
  EXPECT_EQ(list(true), std::vector<std::string>(ids.begin() + 1, ids.end()));

  v1::ListConflictsRequest outside;
  outside.set_scope_prefix("620102");
  EXPECT_EQ(queries_.ListConflicts(Area("620102001"), outside).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(QueriesTest, HistoryIsPagedAndScoped) {
  const std::string h = Register(kVillageA, "H1");
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK(env_.Push(a_, {a_.Visit(HouseholdRef(h), kVillageA)}).status());
  }
  v1::GetHistoryRequest request;
  *request.mutable_subject() = HouseholdRef(h);
  request.set_limit(2);
  int total = 0;
  while (true) {
    ASSERT_OK_AND_ASSIGN(v1::GetHistoryResponse r,
                         env_.engine().GetHistory(Area(kVillageA), request));
    total += r.events_size();
    if (!r.more()) break;
    request.set_after_offset(r.next_after_offset());
  }
  EXPECT_EQ(total, 5);
  EXPECT_EQ(env_.engine().GetHistory(Area(kVillageC), request).status().code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace fieldsync::test
