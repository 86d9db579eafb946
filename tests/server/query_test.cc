// QueryService end to end over state made by real pushes: a household with
// its per-field versions and members, households by scope and paged, a
// subject's history, conflicts after a concurrent edit, rejections.
#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

using QueryTest = SyncWorld;

constexpr char kMember[] = "22222222-2222-4222-8222-000000000001";

TEST_F(QueryTest, GetHouseholdShowsPerFieldVersionsMembersAndLinks) {
  MustPush(tablet(), {tablet().SetField(kH1, kV1, "phone", Text("13800000001"), 0)});
  MustPush(tablet(), {tablet().SetField(kH1, kV1, "phone", Text("13800000002"), 1),
                      tablet().SetField(kH1, kV1, "housing_structure", Text("磚木"), 0),
                      tablet().Make(Household(kH1), kV1, [](v1::Event& e) {
                        v1::MemberAdded* m = e.mutable_member_added();
                        m->set_member_id(kMember);
                        m->set_name("張三");
                        m->set_relation(v1::MEMBER_RELATION_CHILD);
                      })});
  for (bool by_number : {false, true}) {
    SCOPED_TRACE(by_number ? "by number" : "by id");
    v1::GetHouseholdRequest request;
    if (by_number) {
      request.set_household_number("N-1");
    } else {
      request.set_id(kH1);
    }
    v1::GetHouseholdResponse response;
    auto context = ServiceHarness::Context(phone().token());  // The linked cadre.
    grpc::Status status = query().GetHousehold(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    const v1::Household& household = response.household();
    EXPECT_EQ(household.id(), kH1);
    EXPECT_EQ(household.village_code(), kV1);
    const v1::VersionedValue& phone_field = household.fields().at("phone");
    EXPECT_EQ(phone_field.value().string_value(), "13800000002");
    EXPECT_EQ(phone_field.version(), 2u);
    EXPECT_EQ(phone_field.device_id(), tablet().id());
    EXPECT_EQ(phone_field.actor(), "town1");
    EXPECT_EQ(household.fields().at("housing_structure").version(), 1u);
    ASSERT_EQ(response.members_size(), 1);
    EXPECT_EQ(response.members(0).name(), "張三");
    ASSERT_EQ(response.links_size(), 1);
    EXPECT_EQ(response.links(0).id(), "L-h1");
  }
}

TEST_F(QueryTest, ListHouseholdsPagesThroughAScope) {
  // Six more in village 2, registered by the township.
  std::vector<v1::Event> batch;
  for (int i = 0; i < 6; ++i) {
    batch.push_back(tablet().Register(absl::StrCat("11111111-1111-4111-8111-1000000000", 10 + i),
                                      kV2, absl::StrCat("N-2", i)));
  }
  MustPush(tablet(), batch);
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    v1::ListHouseholdsRequest request;
    request.set_scope_prefix(kTownA1);
    request.set_page_size(3);
    request.set_page_token(token);
    v1::ListHouseholdsResponse response;
    auto context = ServiceHarness::Context(tablet().token());
    grpc::Status status = query().ListHouseholds(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(response.households_size(), 3);
    for (const v1::Household& household : response.households()) seen.push_back(household.id());
    token = response.next_page_token();
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(seen.size(), 9u);  // kH1, kH2, kH3 and the six; not kH4.
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 9u);
  // By village, then number: village 1's two first.
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.begin() + 2),
            (std::set<std::string>{kH1, kH2}));
}

TEST_F(QueryTest, GetHistoryListsASubjectsEventsInOrderAndPages) {
  std::vector<v1::Event> visits = {phone().Visit(kH1, kV1), phone().Visit(kH1, kV1),
                                   phone().Visit(kH1, kV1)};
  MustPush(phone(), visits);
  v1::PushResponse refused;  // Out of scope: refused, not history.
  ASSERT_TRUE(Push(phone(), {phone().Visit(kH3, kV2)}, &refused).ok());
  ASSERT_TRUE(refused.results(0).has_rejected());
  v1::GetHistoryRequest request;
  request.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  request.mutable_subject()->set_id(kH1);
  request.set_limit(2);
  std::vector<sync::LoggedEvent> events;
  for (int i = 0; i < 10; ++i) {
    v1::GetHistoryResponse response;
    auto context = ServiceHarness::Context(phone().token());
    grpc::Status status = query().GetHistory(context.get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const sync::LoggedEvent& event : Decoded(response.events())) events.push_back(event);
    if (!response.more()) break;
    request.set_after_offset(response.next_after_offset());
  }
  // Registration, the link, three visits.
  ASSERT_EQ(events.size(), 5u);
  EXPECT_TRUE(events[0].event().has_household_registered());
  EXPECT_TRUE(events[1].event().has_link_started());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(events[2 + i].event().event_id(), visits[i].event_id());
  }
  for (size_t i = 1; i < events.size(); ++i) EXPECT_LT(events[i - 1].offset(), events[i].offset());

  // A cadre reads the history of their own user record too.
  v1::GetHistoryRequest own;
  own.mutable_subject()->set_kind(v1::SUBJECT_KIND_USER);
  own.mutable_subject()->set_id("cadre1");
  v1::GetHistoryResponse mine;
  auto context = ServiceHarness::Context(phone().token());
  ASSERT_TRUE(query().GetHistory(context.get(), own, &mine).ok());
  EXPECT_GE(mine.events_size(), 1);
}

TEST_F(QueryTest, AConcurrentEditIsListedAsAnOpenConflictWithBothSides) {
  // The township and the county both edit from version 0.
  MustPush(tablet(), {tablet().SetField(kH2, kV1, "phone", Text("111"), 0)});
  v1::PushResponse pushed =
      MustPush(county(), {county().SetField(kH2, kV1, "phone", Text("222"), 0)});
  ASSERT_TRUE(pushed.results(0).has_conflict_recorded());
  const std::string id = pushed.results(0).conflict_recorded().conflict_ids(0);

  v1::ListConflictsRequest request;
  request.set_scope_prefix(kTownA1);
  request.set_open_only(true);
  v1::ListConflictsResponse response;
  auto context = ServiceHarness::Context(tablet().token());
  grpc::Status status = query().ListConflicts(context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.conflicts_size(), 1);
  const v1::Conflict& conflict = response.conflicts(0);
  EXPECT_EQ(conflict.id(), id);
  EXPECT_EQ(conflict.kind(), v1::CONFLICT_KIND_FIELD_CONCURRENT);
  EXPECT_EQ(conflict.field(), "phone");
  EXPECT_EQ(conflict.base_version(), 0u);
  EXPECT_TRUE(conflict.open());
  ASSERT_EQ(conflict.sides_size(), 2);
  std::set<std::string> values;
  for (const v1::ConflictSide& side : conflict.sides())
    values.insert(side.field_value().string_value());
  EXPECT_EQ(values, (std::set<std::string>{"111", "222"}));

  // The household names it, and another county sees nothing of it.
  v1::GetHouseholdRequest get;
  get.set_id(kH2);
  v1::GetHouseholdResponse household;
  context = ServiceHarness::Context(county().token());
  ASSERT_TRUE(query().GetHousehold(context.get(), get, &household).ok());
  ASSERT_EQ(household.conflicts_size(), 1);
  EXPECT_EQ(household.conflicts(0).id(), id);
  request.set_scope_prefix("620103");
  context = ServiceHarness::Context(county_b().token());
  ASSERT_TRUE(query().ListConflicts(context.get(), request, &response).ok());
  EXPECT_EQ(response.conflicts_size(), 0);

  // The open-conflicts gauge counts it.
  EXPECT_NE(harness().metrics().Render().find("fieldsync_open_conflicts 1\n"), std::string::npos)
      << harness().metrics().Render();
}

TEST_F(QueryTest, ADeviceAndItsSupervisorSeeItsRejections) {
  MustPush(phone(), {phone().Visit(kH1, kV1)});
  v1::Event outside = phone().Visit(kH3, kV2);
  v1::PushResponse refused;
  ASSERT_TRUE(Push(phone(), {outside}, &refused).ok());
  ASSERT_TRUE(refused.results(0).has_rejected());

  // The cadre, by device.
  v1::ListRejectionsRequest request;
  request.set_device_id(phone().id());
  v1::ListRejectionsResponse response;
  auto context = ServiceHarness::Context(phone().token());
  grpc::Status status = query().ListRejections(context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.rejections_size(), 1);
  EXPECT_EQ(response.rejections(0).event_id(), outside.event_id());
  EXPECT_EQ(response.rejections(0).code(), v1::REJECTION_CODE_OUT_OF_SCOPE);

  // The township, by area.
  v1::ListRejectionsRequest by_area;
  by_area.set_scope_prefix(kTownA1);
  context = ServiceHarness::Context(tablet().token());
  ASSERT_TRUE(query().ListRejections(context.get(), by_area, &response).ok());
  ASSERT_EQ(response.rejections_size(), 1);
  EXPECT_EQ(response.rejections(0).event_id(), outside.event_id());
}

}  // namespace
}  // namespace fieldsync::testing
