// The demo province (fieldsyncd --demo=province, server/demo_province.h) at a
// small size through the same code path as the seed's scale
// (--demo_province_size=2/8/40: 2 counties, 8 villages, 40 households), under
// the default rate limits: the real binary loads it through its own API on
// an empty data directory, every cadre meets the seed's link quota for the
// rank, and a second start on the same directory adds nothing. Everything is
// checked through gRPC.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/query_service.grpc.pb.h"
#include "fieldsync/v1/report_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace fieldsync::testing {
namespace {

// What a client sees of the demo province through the API.
struct Seen {
  int households = 0;
  std::set<std::string> villages;   // of the households
  std::set<std::string> counties;   // 6 digits, of the households
  int cadres = 0;
  int household_links = 0;
  int village_links = 0;
  int units = 0;
  int active_devices = 0;  // of the demo's tablets and phones
  int active_loaders = 0;
  int revoked_loaders = 0;
  int cadres_meeting_link_quota = 0;
  std::map<v1::CadreRank, int> cadres_by_rank;
  int visits = 0;  // this year's and last year's assessments
};

class DemoProvinceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = std::filesystem::path(::testing::TempDir()) /
                absl::StrCat("demo_province_test_", getpid());
    std::filesystem::remove_all(data_dir_);
  }
  void TearDown() override { std::filesystem::remove_all(data_dir_); }

  absl::StatusOr<ServerProcess> Start() {
    return ServerProcess::Start(
        FIELDSYNCD_PATH, {"--data_dir=" + data_dir_.string(), "--demo=province",
                          "--demo_province_size=2/8/40",
                          std::string("--demo_areas_csv=") + AREAS_CSV_PATH});
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  // Pages through `call` until the last page.
  template <typename Request, typename Response, typename Each>
  static void Pages(Request request,
                    const std::function<grpc::Status(grpc::ClientContext*, const Request&,
                                                     Response*)>& call,
                    const std::string& token, Each each) {
    do {
      Response response;
      grpc::Status status = call(Context(token).get(), request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      each(response);
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
  }

  Seen Look(const ServerProcess& server, const std::string& token) {
    Seen seen;
    auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
    auto admin = v1::AdminService::NewStub(channel);
    auto query = v1::QueryService::NewStub(channel);
    auto report = v1::ReportService::NewStub(channel);
    using std::placeholders::_1, std::placeholders::_2, std::placeholders::_3;

    v1::ListHouseholdsRequest households;
    households.set_scope_prefix("62");
    Pages<v1::ListHouseholdsRequest, v1::ListHouseholdsResponse>(
        households,
        std::bind(&v1::QueryService::Stub::ListHouseholds, query.get(), _1, _2, _3), token,
        [&](const v1::ListHouseholdsResponse& r) {
          for (const v1::Household& h : r.households()) {
            ++seen.households;
            seen.villages.insert(h.village_code());
            seen.counties.insert(h.village_code().substr(0, 6));
          }
        });
    v1::ListUsersRequest users;
    users.set_role(v1::ROLE_CADRE);
    Pages<v1::ListUsersRequest, v1::ListUsersResponse>(
        users, std::bind(&v1::AdminService::Stub::ListUsers, admin.get(), _1, _2, _3), token,
        [&](const v1::ListUsersResponse& r) { seen.cadres += r.users_size(); });
    v1::ListLinksRequest links;
    links.set_active_only(true);
    Pages<v1::ListLinksRequest, v1::ListLinksResponse>(
        links, std::bind(&v1::AdminService::Stub::ListLinks, admin.get(), _1, _2, _3), token,
        [&](const v1::ListLinksResponse& r) {
          for (const v1::Link& l : r.links()) {
            if (l.role() == v1::LINK_ROLE_HOUSEHOLD_HELPER) ++seen.household_links;
            if (l.role() == v1::LINK_ROLE_VILLAGE_UNIT) ++seen.village_links;
          }
        });
    Pages<v1::ListUnitsRequest, v1::ListUnitsResponse>(
        v1::ListUnitsRequest(),
        std::bind(&v1::AdminService::Stub::ListUnits, admin.get(), _1, _2, _3), token,
        [&](const v1::ListUnitsResponse& r) { seen.units += r.units_size(); });
    v1::ListDevicesRequest devices;
    devices.set_include_revoked(true);
    Pages<v1::ListDevicesRequest, v1::ListDevicesResponse>(
        devices, std::bind(&v1::AdminService::Stub::ListDevices, admin.get(), _1, _2, _3), token,
        [&](const v1::ListDevicesResponse& r) {
          for (const v1::Device& d : r.devices()) {
            if (absl::StartsWith(d.user_id(), "demo-loader-")) {
              ++(d.revoked() ? seen.revoked_loaders : seen.active_loaders);
            } else if (!d.revoked() && (absl::StartsWith(d.user_id(), "demo-staff-") ||
                                        absl::StartsWith(d.user_id(), "demo-cadre-"))) {
              ++seen.active_devices;
            }
          }
        });
    const int year = static_cast<int>(
        absl::ToCivilYear(absl::Now(), absl::FixedTimeZone(8 * 3600)).year());
    for (int y : {year - 1, year}) {
      v1::GetAssessmentRequest assessment;
      assessment.set_scope_prefix("62");
      assessment.set_year(y);
      Pages<v1::GetAssessmentRequest, v1::GetAssessmentResponse>(
          assessment,
          std::bind(&v1::ReportService::Stub::GetAssessment, report.get(), _1, _2, _3), token,
          [&](const v1::GetAssessmentResponse& r) {
            for (const v1::CadreAssessment& c : r.cadres()) {
              seen.visits += static_cast<int>(c.visits());
              if (y != year) continue;
              ++seen.cadres_by_rank[c.rank()];
              if (c.link_quota_met() && c.linked_households() >= c.household_quota()) {
                ++seen.cadres_meeting_link_quota;
              }
            }
          });
    }
    return seen;
  }

  std::filesystem::path data_dir_;
};

TEST_F(DemoProvinceTest, SmallProvinceLoadsThroughTheApiAndASecondStartAddsNothing) {
  Seen first;
  std::string token;
  {
    auto server = Start();
    ASSERT_TRUE(server.ok()) << server.status();
    ASSERT_TRUE(server->first_admin_token().has_value());
    token = *server->first_admin_token();
    first = Look(*server, token);
    EXPECT_EQ(server->StopWith(SIGTERM), 0);
  }
  // 2 counties, 4 villages each (under real townships: 12 digits, the
  // township's 9 first), 5 households a village.
  EXPECT_EQ(first.households, 40);
  EXPECT_EQ(first.villages.size(), 8u);
  EXPECT_EQ(first.counties.size(), 2u);
  for (const std::string& village : first.villages) EXPECT_EQ(village.size(), 12u) << village;
  // One unit per county (up to 4 villages a unit), each linking its villages;
  // one cadre per village (8 households a cadre at most), every household
  // linked; the ranks per the seed: 1 in 20 department rank, 3 in 20 county.
  EXPECT_EQ(first.units, 2);
  EXPECT_EQ(first.village_links, 8);
  EXPECT_EQ(first.cadres, 8);
  EXPECT_EQ(first.household_links, 40);
  EXPECT_EQ(first.cadres_meeting_link_quota, 8);
  EXPECT_EQ(first.cadres_by_rank[v1::CADRE_RANK_DEPARTMENT_RANK], 1);
  EXPECT_EQ(first.cadres_by_rank[v1::CADRE_RANK_COUNTY_RANK], 3);
  EXPECT_EQ(first.cadres_by_rank[v1::CADRE_RANK_OTHER], 4);
  // Two visiting cadres, 4 visits to each of their 5 households.
  EXPECT_EQ(first.visits, 40);
  // Two tablets and two phones stay; the two loader devices are revoked.
  EXPECT_EQ(first.active_devices, 4);
  EXPECT_EQ(first.active_loaders, 0);
  EXPECT_EQ(first.revoked_loaders, 2);

  auto again = Start();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->first_admin_token().has_value());
  Seen second = Look(*again, token);
  EXPECT_EQ(second.households, first.households);
  EXPECT_EQ(second.cadres, first.cadres);
  EXPECT_EQ(second.household_links, first.household_links);
  EXPECT_EQ(second.units, first.units);
  EXPECT_EQ(second.visits, first.visits);
  EXPECT_EQ(second.active_devices, first.active_devices);
  EXPECT_EQ(second.revoked_loaders, first.revoked_loaders);
}

}  // namespace
}  // namespace fieldsync::testing
