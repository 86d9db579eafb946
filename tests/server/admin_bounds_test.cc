// Issue 8's leftovers in AdminService, through the real gRPC surface:
//   - a List* page (ListUsers, ListUnits, ListDevices, ListLinks: one index
//     scan, server/directory.h ScanIndexPage) stops after
//     limits.max_examined_records index entries looked at, kept or not, with
//     a token to go on from, so a filter that matches nothing never walks the
//     whole index in one call; following the tokens still finds everything;
//   - a link date entered through AdminService has the same year range as
//     the same field in a pushed LinkStarted / LinkEnded (1900-2100);
//   - ListDevices reports Device.last_device_seq: the last device_seq the
//     sync engine applied from that device.
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr uint32_t kBudget = 5;

class AdminBoundsTest : public SyncWorld {
 public:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_limits()->set_max_examined_records(kBudget);
  }

  // Adds `n` HQ analysts hq-extra-0.. (more users than the budget).
  void AddAnalysts(int n) {
    for (int i = 0; i < n; ++i) {
      v1::User user;
      user.set_id(absl::StrCat("hq-extra-", i));
      user.set_name(absl::StrCat("HQ extra ", i));
      user.set_role(v1::ROLE_HQ_ANALYST);
      absl::StatusOr<v1::User> made = UpsertUser(*harness().channel(), admin_token(), user);
      ASSERT_TRUE(made.ok()) << made.status();
    }
  }

  grpc::Status ListUsers(const v1::ListUsersRequest& request, v1::ListUsersResponse* response) {
    auto context = ServiceHarness::Context(admin_token());
    return admin().ListUsers(context.get(), request, response);
  }
};

TEST_F(AdminBoundsTest, AListUsersPageThatMatchesNothingStopsAtTheExaminedBudgetWithAToken) {
  AddAnalysts(12);
  v1::ListUsersRequest request;
  request.set_unit_id("no-such-unit");  // Matches no user: every entry is examined, none kept.
  v1::ListUsersResponse page;
  grpc::Status status = ListUsers(request, &page);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(page.users_size(), 0);
  EXPECT_FALSE(page.next_page_token().empty())
      << "the page looked at more than limits.max_examined_records=" << kBudget << " entries";

  // Following the tokens ends: each call moves on by the budget.
  int calls = 1;
  while (!page.next_page_token().empty()) {
    ASSERT_LT(calls, 100) << "the tokens do not move on";
    request.set_page_token(page.next_page_token());
    page.Clear();
    status = ListUsers(request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(page.users_size(), 0);
    ++calls;
  }
  EXPECT_GE(calls, 3);  // At least 17 users at 5 entries a call.
}

TEST_F(AdminBoundsTest, FollowingTheTokensOfBudgetedPagesListsEveryUserOnce) {
  AddAnalysts(12);
  v1::ListUsersRequest request;
  request.set_page_size(100);
  std::vector<std::string> ids;
  for (int calls = 0;; ++calls) {
    ASSERT_LT(calls, 100) << "the tokens do not move on";
    v1::ListUsersResponse page;
    grpc::Status status = ListUsers(request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_LE(static_cast<uint32_t>(page.users_size()), kBudget);
    for (const v1::User& user : page.users()) ids.push_back(user.id());
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  const std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size()) << "a user was listed twice";
  for (const char* id : {"cadre1", "town1", "county1", "county2", "hq1", "hq-extra-0",
                         "hq-extra-11"}) {
    EXPECT_TRUE(unique.count(id)) << id << " is missing";
  }
}

TEST_F(AdminBoundsTest, AnAdminLinkDateHasThePushedLinkDatesYearRange) {
  v1::EndLinkRequest request;
  request.set_link_id("L-h1");
  request.set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
  request.mutable_valid_to()->set_year(2500);  // A real date, past the programme's years.
  request.mutable_valid_to()->set_month(1);
  request.mutable_valid_to()->set_day(1);
  v1::EndLinkResponse response;
  auto context = ServiceHarness::Context(admin_token());
  grpc::Status status = admin().EndLink(context.get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "valid_to 2500-1-1"))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "1900-2100")) << status.error_message();
}

TEST_F(AdminBoundsTest, ListDevicesReportsTheLastDeviceSeqTheServerApplied) {
  MustPush(phone(), {phone().Visit(kH1, kV1), phone().Visit(kH1, kV1)});
  const uint64_t last = phone().next_seq() - 1;
  ASSERT_GE(last, 2u);
  v1::ListDevicesRequest request;
  request.set_user_id(phone().user_id());
  v1::ListDevicesResponse response;
  auto context = ServiceHarness::Context(admin_token());
  grpc::Status status = admin().ListDevices(context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  bool found = false;
  for (const v1::Device& device : response.devices()) {
    if (device.id() != phone().id()) continue;
    found = true;
    EXPECT_EQ(device.last_device_seq(), last);
  }
  EXPECT_TRUE(found) << response.ShortDebugString();
}

}  // namespace
}  // namespace fieldsync::testing
