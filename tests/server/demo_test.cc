// The demo county (fieldsyncd --demo=county, server/demo.h): the real binary
// on an empty data directory loads it through its own API, and a second start
// on the same directory adds nothing. Everything is checked through gRPC.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/query_service.grpc.pb.h"
#include "fieldsync/v1/report_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"
#include "tests/sync/test_signing.h"

namespace fieldsync::testing {
namespace {

using testsig::Decoded;

constexpr char kCounty[] = "620122";  // 皋兰县, the demo's default

// What a client sees of the demo through the API.
struct Seen {
  std::vector<v1::Household> households;
  std::vector<v1::User> cadres;
  std::vector<v1::Link> links;
  std::vector<v1::Conflict> open_conflicts;
  int devices = 0;
  int visits = 0;
  int visits_without_fix = 0;
  std::set<int> visit_years;  // China Standard Time
};

class DemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = std::filesystem::path(::testing::TempDir()) /
                absl::StrCat("demo_test_", getpid(), "_",
                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(data_dir_);
  }
  void TearDown() override {
    std::filesystem::remove_all(data_dir_);
    std::filesystem::remove(data_dir_.string() + ".textproto");
  }

  // The demo itself runs under the default rate limits; the test's own reads
  // (a GetHistory per household) get room in a config file.
  absl::StatusOr<ServerProcess> StartWithDemo() {
    const std::string config = data_dir_.string() + ".textproto";
    std::ofstream(config) << "limits { device_requests_per_second: 100000 "
                             "device_request_burst: 100000 }\n";
    return ServerProcess::Start(FIELDSYNCD_PATH,
                                {"--config=" + config, "--data_dir=" + data_dir_.string(),
                                 "--demo=county",
                                 std::string("--demo_areas_csv=") + AREAS_CSV_PATH});
  }

  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  // Everything the demo made, read through AdminService and QueryService.
  Seen Look(const ServerProcess& server, const std::string& token) {
    Seen seen;
    auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
    auto admin = v1::AdminService::NewStub(channel);
    auto query = v1::QueryService::NewStub(channel);
    std::string page;
    do {
      v1::ListHouseholdsRequest request;
      request.set_scope_prefix(kCounty);
      request.set_page_token(page);
      v1::ListHouseholdsResponse response;
      grpc::Status status = query->ListHouseholds(Context(token).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) return seen;
      for (const v1::Household& h : response.households()) seen.households.push_back(h);
      page = response.next_page_token();
    } while (!page.empty());
    do {
      v1::ListUsersRequest request;
      request.set_role(v1::ROLE_CADRE);
      request.set_page_token(page);
      v1::ListUsersResponse response;
      grpc::Status status = admin->ListUsers(Context(token).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) return seen;
      for (const v1::User& u : response.users()) seen.cadres.push_back(u);
      page = response.next_page_token();
    } while (!page.empty());
    do {
      v1::ListLinksRequest request;
      request.set_scope_prefix(kCounty);
      request.set_page_token(page);
      v1::ListLinksResponse response;
      grpc::Status status = admin->ListLinks(Context(token).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) return seen;
      for (const v1::Link& l : response.links()) seen.links.push_back(l);
      page = response.next_page_token();
    } while (!page.empty());
    do {
      v1::ListConflictsRequest request;
      request.set_scope_prefix(kCounty);
      request.set_open_only(true);
      request.set_page_token(page);
      v1::ListConflictsResponse response;
      grpc::Status status = query->ListConflicts(Context(token).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) return seen;
      for (const v1::Conflict& c : response.conflicts()) seen.open_conflicts.push_back(c);
      page = response.next_page_token();
    } while (!page.empty());
    do {
      v1::ListDevicesRequest request;
      request.set_page_token(page);
      v1::ListDevicesResponse response;
      grpc::Status status = admin->ListDevices(Context(token).get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) return seen;
      seen.devices += response.devices_size();
      page = response.next_page_token();
    } while (!page.empty());
    for (const v1::Household& h : seen.households) {
      uint64_t after = 0;
      for (bool more = true; more;) {
        v1::GetHistoryRequest request;
        request.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
        request.mutable_subject()->set_id(h.id());
        request.set_after_offset(after);
        v1::GetHistoryResponse response;
        grpc::Status status = query->GetHistory(Context(token).get(), request, &response);
        EXPECT_TRUE(status.ok()) << status.error_message();
        if (!status.ok()) return seen;
        for (const sync::LoggedEvent& e : Decoded(response.events())) {
          if (!e.event().has_visit_recorded()) continue;
          ++seen.visits;
          if (!e.event().has_location()) ++seen.visits_without_fix;
          seen.visit_years.insert(static_cast<int>(absl::ToCivilYear(
              absl::FromUnixSeconds(e.event().visit_recorded().start_time().seconds()),
              absl::FixedTimeZone(8 * 3600)).year()));
        }
        after = response.next_after_offset();
        more = response.more();
      }
    }
    return seen;
  }

  // The county's line and its townships' lines from the reference CSV.
  static std::string CountyCsv(int* lines) {
    std::ifstream in(AREAS_CSV_PATH);
    std::string csv = "code,parent,level,name\n", line;
    *lines = 0;
    const std::string county12 = absl::StrCat(kCounty, "000000");
    while (std::getline(in, line)) {
      std::vector<std::string> f = absl::StrSplit(line, ',');
      if (f.size() < 4) continue;
      if (f[0] == county12 || (f[2] == "township" && f[1] == county12)) {
        absl::StrAppend(&csv, line, "\n");
        ++*lines;
      }
    }
    return csv;
  }

  std::filesystem::path data_dir_;
};

TEST_F(DemoTest, FirstStartOfAnEmptyStoreLoadsTheDemoCountyThroughTheApi) {
  auto server = StartWithDemo();
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(server->first_admin_token().has_value());
  const std::string token = *server->first_admin_token();

  // The real county and its townships are in the store, unchanged from the
  // reference data (a dry-run import finds every line already there).
  int lines = 0;
  v1::ImportAreasRequest dry;
  dry.set_csv(CountyCsv(&lines));
  dry.set_dry_run(true);
  ASSERT_GT(lines, 1);
  v1::ImportAreasResponse same;
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto admin = v1::AdminService::NewStub(channel);
  ASSERT_TRUE(admin->ImportAreas(Context(token).get(), dry, &same).ok());
  EXPECT_EQ(same.errors_size(), 0) << same.DebugString();
  EXPECT_EQ(same.unchanged(), static_cast<uint32_t>(lines));
  EXPECT_EQ(same.created(), 0u);

  Seen seen = Look(*server, token);
  // Households in generated villages: 12 digits under a real township's 9.
  ASSERT_GE(seen.households.size(), 10u);
  std::set<std::string> townships;
  for (absl::string_view l : absl::StrSplit(dry.csv(), '\n')) {
    if (absl::StrContains(l, ",township,")) townships.insert(std::string(l.substr(0, 9)));
  }
  std::set<std::string> villages;
  for (const v1::Household& h : seen.households) {
    ASSERT_EQ(h.village_code().size(), 12u) << h.ShortDebugString();
    EXPECT_EQ(townships.count(h.village_code().substr(0, 9)), 1u) << h.village_code();
    EXPECT_NE(h.village_code().substr(9), "000");
    EXPECT_FALSE(h.household_number().empty());
    EXPECT_FALSE(h.head_name().empty());
    villages.insert(h.village_code());
  }
  EXPECT_GE(villages.size(), townships.size()) << "villages under every township";

  // Cadres with ranks, each linked to at least the seed's quota of households.
  ASSERT_GE(seen.cadres.size(), 5u);
  std::map<std::string, int> links_of;
  for (const v1::Link& link : seen.links) {
    if (link.active() && link.target().kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
      ++links_of[link.cadre_id()];
    }
  }
  std::set<v1::CadreRank> ranks;
  for (const v1::User& cadre : seen.cadres) {
    ranks.insert(cadre.rank());
    const int quota = cadre.rank() == v1::CADRE_RANK_DEPARTMENT_RANK ? 3
                      : cadre.rank() == v1::CADRE_RANK_COUNTY_RANK   ? 2
                                                                     : 1;
    EXPECT_GE(links_of[cadre.id()], quota) << cadre.ShortDebugString();
  }
  EXPECT_GE(ranks.size(), 3u) << "several ranks";
  // Devices: one per cadre and the registry's tablet.
  EXPECT_GE(seen.devices, static_cast<int>(seen.cadres.size()) + 1);

  // A season of visits, some without a GPS fix; conflicts waiting for review.
  EXPECT_GE(seen.visits, static_cast<int>(seen.cadres.size()) * 2);
  EXPECT_GE(seen.visits_without_fix, 1);
  EXPECT_LT(seen.visits_without_fix, seen.visits);
  EXPECT_GE(seen.open_conflicts.size(), 1u);

  // The reports see the season as the demo meant it: flagged visits (no fix,
  // a fix far from the dwelling) and cadres short of the visits they owe.
  auto report = v1::ReportService::NewStub(channel);
  std::set<v1::EvidenceFlagKind> kinds;
  std::set<std::string> short_of_visits;
  for (int year : seen.visit_years) {
    v1::GetEvidenceReportRequest evidence;
    evidence.set_scope_prefix(kCounty);
    evidence.set_year(year);
    evidence.set_page_size(1000);
    v1::GetEvidenceReportResponse flags;
    grpc::Status status = report->GetEvidenceReport(Context(token).get(), evidence, &flags);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::EvidenceFlag& flag : flags.flags()) kinds.insert(flag.kind());
    v1::GetAssessmentRequest assessment;
    assessment.set_scope_prefix(kCounty);
    assessment.set_year(year);
    assessment.set_page_size(1000);
    v1::GetAssessmentResponse assessed;
    status = report->GetAssessment(Context(token).get(), assessment, &assessed);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::CadreAssessment& cadre : assessed.cadres()) {
      if (cadre.visits() < cadre.visits_required()) short_of_visits.insert(cadre.user_id());
    }
  }
  EXPECT_EQ(kinds.count(v1::EVIDENCE_FLAG_KIND_NO_FIX), 1u);
  EXPECT_EQ(kinds.count(v1::EVIDENCE_FLAG_KIND_GPS_FAR), 1u);
  EXPECT_GE(short_of_visits.size(), 1u);
  EXPECT_LT(short_of_visits.size(), seen.cadres.size()) << "most cadres meet the quota";

  EXPECT_EQ(server->StopWith(SIGTERM), 0);
}

TEST_F(DemoTest, ASecondStartOnTheSameStoreAddsNothing) {
  Seen first;
  {
    auto server = StartWithDemo();
    ASSERT_TRUE(server.ok()) << server.status();
    ASSERT_TRUE(server->first_admin_token().has_value());
    first = Look(*server, *server->first_admin_token());
    ASSERT_GT(first.households.size(), 0u);
    ASSERT_EQ(server->StopWith(SIGTERM), 0);
  }
  std::ifstream token_file(data_dir_ / "admin-token");
  std::string token;
  std::getline(token_file, token);
  ASSERT_FALSE(token.empty());

  auto again = StartWithDemo();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->first_admin_token().has_value()) << "not a new store";
  Seen second = Look(*again, token);
  EXPECT_EQ(second.households.size(), first.households.size());
  EXPECT_EQ(second.cadres.size(), first.cadres.size());
  EXPECT_EQ(second.links.size(), first.links.size());
  EXPECT_EQ(second.open_conflicts.size(), first.open_conflicts.size());
  EXPECT_EQ(second.devices, first.devices);
  EXPECT_EQ(second.visits, first.visits);
  EXPECT_EQ(again->StopWith(SIGTERM), 0);
}

}  // namespace
}  // namespace fieldsync::testing
