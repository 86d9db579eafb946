// AdminService against a real gRPC server on port 0: the real Gansu area
// tree, units, users, links and their replacement, enrollment and revocation,
// backups; and every admin change read back from the log as a signed event
// of the node device, attributed to the admin who made it.
#include "server/admin_service.h"

#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/time.h"
#include "domain/queries.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/identity.h"
#include "storage/sha256.h"
#include "sync/event_codec.h"
#include "sync/store_reader.h"
#include "tests/server/service_harness.h"

namespace fieldsync {
namespace {

using ::fieldsync::testing::ServiceHarness;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// A small tree for the tests that do not need the real one.
constexpr char kSmallTree[] =
    "620000000000,,province,甘肃省\n"
    "620100000000,620000000000,city,兰州市\n"
    "620102000000,620100000000,county,城关区\n"
    "620103000000,620100000000,county,七里河区\n"
    "620102001000,620102000000,township,甲乡\n"
    "620102001001,620102001000,village,一村,1\n"
    "620102001002,620102001000,village,二村\n";

class AdminServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("admin_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    v1::ServerConfig config;
    config.mutable_limits()->set_device_requests_per_second(100000);
    config.mutable_limits()->set_device_request_burst(100000);
    auto harness = ServiceHarness::Start(dir_.string(), config);
    ASSERT_TRUE(harness.ok()) << harness.status();
    harness_ = *std::move(harness);
    token_ = harness_->admin_token();
    admin_ = v1::AdminService::NewStub(harness_->channel());
  }
  void TearDown() override {
    harness_.reset();
    std::filesystem::remove_all(dir_);
  }

  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (v1::AdminService::Stub::*rpc)(grpc::ClientContext*,
                                                                const Request&, Response*),
                    const Request& request, Response* response) {
    auto context = ServiceHarness::Context(token_);
    return (admin_.get()->*rpc)(context.get(), request, response);
  }

  v1::ImportAreasResponse Import(const std::string& csv, bool dry_run = false) {
    v1::ImportAreasRequest request;
    request.set_csv(csv);
    request.set_dry_run(dry_run);
    v1::ImportAreasResponse response;
    grpc::Status status = Call(&v1::AdminService::Stub::ImportAreas, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::Unit Unit(const std::string& id, const std::string& name, const std::string& area) {
    v1::UpsertUnitRequest request;
    request.mutable_unit()->set_id(id);
    request.mutable_unit()->set_name(name);
    request.mutable_unit()->set_area_code(area);
    request.mutable_unit()->set_level(v1::UNIT_LEVEL_COUNTY);
    v1::UpsertUnitResponse response;
    grpc::Status status = Call(&v1::AdminService::Stub::UpsertUnit, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.unit();
  }

  grpc::Status Cadre(const std::string& id, const std::string& unit) {
    v1::UpsertUserRequest request;
    v1::User* user = request.mutable_user();
    user->set_id(id);
    user->set_name(absl::StrCat("cadre ", id));
    user->set_role(v1::ROLE_CADRE);
    user->set_rank(v1::CADRE_RANK_COUNTY_RANK);
    user->set_unit_id(unit);
    v1::UpsertUserResponse response;
    return Call(&v1::AdminService::Stub::UpsertUser, request, &response);
  }

  grpc::Status StartLink(const std::string& link_id, const std::string& cadre, v1::SubjectKind kind,
                         const std::string& target, v1::LinkRole role,
                         v1::StartLinkResponse* response) {
    v1::StartLinkRequest request;
    request.set_link_id(link_id);
    request.set_cadre_id(cadre);
    request.mutable_target()->set_kind(kind);
    request.mutable_target()->set_id(target);
    request.set_role(role);
    return Call(&v1::AdminService::Stub::StartLink, request, response);
  }

  std::vector<v1::Link> LinksOf(const std::string& household, bool active_only) {
    v1::ListLinksRequest request;
    request.mutable_target()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    request.mutable_target()->set_id(household);
    request.set_active_only(active_only);
    v1::ListLinksResponse response;
    grpc::Status status = Call(&v1::AdminService::Stub::ListLinks, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.links().begin(), response.links().end()};
  }

  std::filesystem::path dir_;
  std::unique_ptr<ServiceHarness> harness_;
  std::string token_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

// --- Areas ------------------------------------------------------------------------------

TEST_F(AdminServiceTest, ImportsTheRealGansuAreaTree) {
  std::string csv = ReadFile(FIELDSYNC_AREAS_CSV);
  ASSERT_FALSE(csv.empty()) << "missing " << FIELDSYNC_AREAS_CSV;
  size_t lines = std::count(csv.begin(), csv.end(), '\n');
  ASSERT_EQ(lines, 1507u);  // A header and 1,506 areas.
  uint64_t head_before = harness_->store().Head();

  v1::ImportAreasResponse response = Import(csv);
  ASSERT_EQ(response.errors_size(), 0) << response.errors(0).ShortDebugString();
  EXPECT_EQ(response.created(), 1506u);
  EXPECT_EQ(response.updated(), 0u);
  EXPECT_EQ(response.unchanged(), 0u);
  EXPECT_FALSE(response.import_id().empty());
  EXPECT_EQ(response.last_offset(), harness_->store().Head());

  // The log: AreaImported parts holding every area once, of one import.
  std::set<std::string> codes;
  uint32_t parts = 0;
  for (const sync::LoggedEvent& event : harness_->ReadLog()) {
    if (event.offset() <= head_before || !event.event().has_area_imported()) continue;
    const v1::AreaImported& body = event.event().area_imported();
    ++parts;
    EXPECT_EQ(body.import_id(), response.import_id());
    EXPECT_EQ(body.part(), parts);
    EXPECT_EQ(body.source_sha256(), storage::DigestBytes(storage::Sha256({csv})));
    EXPECT_EQ(event.actor(), server::kFirstAdminUserId);
    EXPECT_EQ(event.event().subject().id(), "620000000000");
    EXPECT_LE(event.event().ByteSizeLong(), 65536u) << "part over limits.max_event_bytes";
    for (const v1::Area& area : body.areas()) EXPECT_TRUE(codes.insert(area.code()).second);
  }
  EXPECT_GT(parts, 1u);
  EXPECT_EQ(codes.size(), 1506u);

  // Importing the same file again changes nothing and appends nothing.
  uint64_t head = harness_->store().Head();
  v1::ImportAreasResponse again = Import(csv);
  EXPECT_EQ(again.unchanged(), 1506u);
  EXPECT_EQ(again.created() + again.updated(), 0u);
  EXPECT_EQ(harness_->store().Head(), head);

  // A township now has its villages imported on their own: parents in the store.
  v1::ImportAreasResponse villages =
      Import("620102001001,620102001000,village,一村\n620102001002,620102001000,village,二村\n");
  EXPECT_EQ(villages.errors_size(), 0);
  EXPECT_EQ(villages.created(), 2u);
}

TEST_F(AdminServiceTest, DryRunCountsAndAppendsNothing) {
  uint64_t head = harness_->store().Head();
  v1::ImportAreasResponse response = Import(kSmallTree, /*dry_run=*/true);
  EXPECT_EQ(response.errors_size(), 0);
  EXPECT_EQ(response.created(), 7u);
  EXPECT_TRUE(response.import_id().empty());
  EXPECT_EQ(harness_->store().Head(), head);
}

TEST_F(AdminServiceTest, ReimportReportsUpdatedAreas) {
  Import(kSmallTree);
  std::string renamed = kSmallTree;
  renamed.replace(renamed.find("二村"), std::string("二村").size(), "新二村");
  v1::ImportAreasResponse response = Import(renamed);
  EXPECT_EQ(response.updated(), 1u);
  EXPECT_EQ(response.unchanged(), 6u);
}

TEST_F(AdminServiceTest, ImportReportsEveryBadLineAndImportsNothing) {
  uint64_t head = harness_->store().Head();
  std::string csv =
      "code,parent,level,name\n"                       // 1
      "620000000000,,province,甘肃省\n"                // 2
      "62010000000,620000000000,city,短码\n"           // 3: 11 digits
      "620100000000,620000000000,metropolis,兰州市\n"  // 4: level
      "620200000000,629900000000,city,无父\n"          // 5: parent unknown
      "620300000000,620000000000,city,金昌市\n"        // 6: fine
      "620301000000,620300000000,county,金川区\n"      // 7: fine
      "620401000000,620300000000,county,错父\n"        // 8: not under parent
      "620301001000,620000000000,township,越级\n"      // 9: parent is fine by level
      "620300000000,620000000000,city,重复\n"          // 10: duplicate
      "620301002000,620301000000,township,乡,2\n"      // 11: poor flag
      "620301003000,620301000000,township\n"           // 12: columns
      "620301004000,620301000000,township,\"未闭合\n"  // 13: quote
      "620301005000,620301001000,township,同级\n"      // 14: parent same level
      "620301006100,620301000000,township,尾数\n";     // 15: trailing digits
  v1::ImportAreasResponse response = Import(csv);
  std::map<uint32_t, std::string> errors;
  for (const v1::ImportError& e : response.errors()) errors[e.line()] = e.message();
  EXPECT_TRUE(absl::StrContains(errors[3], "12 digits")) << errors[3];
  EXPECT_TRUE(absl::StrContains(errors[4], "unknown level")) << errors[4];
  EXPECT_TRUE(absl::StrContains(errors[5], "neither in the file nor already imported"))
      << errors[5];
  EXPECT_TRUE(absl::StrContains(errors[8], "does not start with its parent's prefix")) << errors[8];
  EXPECT_TRUE(absl::StrContains(errors[10], "already on line 6")) << errors[10];
  EXPECT_TRUE(absl::StrContains(errors[11], "poor must be 0 or 1")) << errors[11];
  EXPECT_TRUE(absl::StrContains(errors[12], "columns")) << errors[12];
  EXPECT_TRUE(absl::StrContains(errors[13], "quoted")) << errors[13];
  EXPECT_TRUE(absl::StrContains(errors[14], "not above")) << errors[14];
  EXPECT_TRUE(absl::StrContains(errors[15], "zeros")) << errors[15];
  EXPECT_EQ(errors.count(2) + errors.count(6) + errors.count(7), 0u);
  EXPECT_TRUE(response.import_id().empty());
  EXPECT_EQ(response.created(), 0u);
  EXPECT_EQ(harness_->store().Head(), head);
}

TEST_F(AdminServiceTest, ImportRefusesAnEmptyCsv) {
  v1::ImportAreasRequest request;
  v1::ImportAreasResponse response;
  EXPECT_EQ(Call(&v1::AdminService::Stub::ImportAreas, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(AreaCsvTest, AcceptsBomCrlfQuotesAndThePoorFlag) {
  std::vector<v1::ImportError> errors;
  absl::Status store_error;
  std::vector<server::AreaRow> rows = server::ParseAreaCsv(
      "\xEF\xBB\xBF"
      "code,parent,level,name,poor\r\n"
      "620000000000,,province,\"甘肃省, ““省””\"\r\n"
      "\r\n"
      "620100000000,620000000000,city,\"兰州\"\"市\"\"\",1\r\n",
      100, [](const std::string&) { return std::optional<v1::AreaLevel>(); }, &errors,
      &store_error);
  ASSERT_TRUE(store_error.ok());
  ASSERT_TRUE(errors.empty()) << errors[0].ShortDebugString();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].area.name(), "甘肃省, ““省””");
  EXPECT_EQ(rows[1].line, 4u);
  EXPECT_EQ(rows[1].area.name(), "兰州\"市\"");
  EXPECT_TRUE(rows[1].area.designated_poor());
  EXPECT_EQ(rows[1].area.level(), v1::AREA_LEVEL_CITY);
}

TEST(AreaCsvTest, ErrorsAreCappedWithASummary) {
  std::string csv;
  for (int i = 0; i < 150; ++i) csv += "bad\n";
  std::vector<v1::ImportError> errors;
  absl::Status store_error;
  server::ParseAreaCsv(
      csv, 100, [](const std::string&) { return std::optional<v1::AreaLevel>(); }, &errors,
      &store_error);
  ASSERT_EQ(errors.size(), 101u);
  EXPECT_EQ(errors.back().line(), 0u);
  EXPECT_EQ(errors.back().message(), "50 more errors not shown");
}

// --- Units and users ---------------------------------------------------------------------

TEST_F(AdminServiceTest, UnitsRoundTripInNameOrderWithPages) {
  Import(kSmallTree);
  v1::Unit made = Unit("", "丁 unit", "620102000000");
  EXPECT_TRUE(absl::StartsWith(made.id(), "unit-")) << made.id();
  Unit("u-b", "乙 unit", "620102001000");
  Unit("u-a", "甲 unit", "620103000000");
  Unit("u-c", "丙 unit", "620102000000");
  // Renaming moves a unit in the order.
  Unit("u-a", "A unit", "620103000000");

  v1::ListUnitsRequest request;
  request.set_page_size(2);
  std::vector<std::string> names;
  for (int page = 0; page < 5; ++page) {
    v1::ListUnitsResponse response;
    ASSERT_TRUE(Call(&v1::AdminService::Stub::ListUnits, request, &response).ok());
    for (const v1::Unit& unit : response.units()) names.push_back(unit.name());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  std::vector<std::string> sorted = names;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(names, sorted);
  EXPECT_EQ(names.size(), 4u);
  EXPECT_EQ(names.front(), "A unit");

  v1::ListUnitsRequest county;
  county.set_scope_prefix("620102");
  v1::ListUnitsResponse in_county;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListUnits, county, &in_county).ok());
  EXPECT_EQ(in_county.units_size(), 3);

  v1::ListUnitsRequest bad_token;
  bad_token.set_page_token("!!!");
  v1::ListUnitsResponse ignored;
  EXPECT_EQ(Call(&v1::AdminService::Stub::ListUnits, bad_token, &ignored).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminServiceTest, DisabledUnitsAreListedOnlyWhenAsked) {
  Import(kSmallTree);
  Unit("u-1", "one", "620102000000");
  v1::UpsertUnitRequest request;
  *request.mutable_unit() = Unit("u-2", "two", "620102000000");
  request.mutable_unit()->set_disabled(true);
  v1::UpsertUnitResponse upserted;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::UpsertUnit, request, &upserted).ok());
  v1::ListUnitsRequest list;
  v1::ListUnitsResponse response;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListUnits, list, &response).ok());
  EXPECT_EQ(response.units_size(), 1);
  list.set_include_disabled(true);
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListUnits, list, &response).ok());
  EXPECT_EQ(response.units_size(), 2);
}

TEST_F(AdminServiceTest, UnitValidationNamesTheField) {
  Import(kSmallTree);
  Unit("u-1", "one", "620102000000");
  auto upsert = [&](v1::Unit unit) {
    v1::UpsertUnitRequest request;
    *request.mutable_unit() = unit;
    v1::UpsertUnitResponse response;
    return Call(&v1::AdminService::Stub::UpsertUnit, request, &response);
  };
  v1::Unit unit;
  unit.set_id("u-2");
  grpc::Status status = upsert(unit);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "unit.name")) << status.error_message();
  unit.set_name("two");
  unit.set_area_code("629999000000");
  EXPECT_EQ(upsert(unit).error_code(), grpc::StatusCode::NOT_FOUND);
  unit.set_area_code("6201");
  EXPECT_EQ(upsert(unit).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  unit.clear_area_code();
  unit.set_id("bad id/");
  EXPECT_EQ(upsert(unit).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  unit.set_id("u-2");
  unit.set_level(static_cast<v1::UnitLevel>(99));
  EXPECT_EQ(upsert(unit).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  unit.set_level(v1::UNIT_LEVEL_COUNTY);
  unit.set_parent_unit_id("u-1");
  ASSERT_TRUE(upsert(unit).ok());
  // u-1 under u-2 would close a cycle.
  v1::Unit one;
  one.set_id("u-1");
  one.set_name("one");
  one.set_parent_unit_id("u-2");
  status = upsert(one);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "cycle")) << status.error_message();
}

TEST_F(AdminServiceTest, UsersRoundTripWithFilters) {
  Import(kSmallTree);
  Unit("u-1", "one", "620102001000");
  ASSERT_TRUE(Cadre("c-1", "u-1").ok());
  v1::UpsertUserRequest request;
  v1::User* staff = request.mutable_user();
  staff->set_name("鄉鎮幹事");
  staff->set_role(v1::ROLE_TOWNSHIP_STAFF);
  staff->add_scope_area_codes("620102001");
  staff->set_phone("+86 931-1234567");
  v1::UpsertUserResponse response;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::UpsertUser, request, &response).ok());
  EXPECT_TRUE(absl::StartsWith(response.user().id(), "u-"));
  EXPECT_GT(response.offset(), 0u);

  v1::ListUsersRequest list;
  v1::ListUsersResponse users;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListUsers, list, &users).ok());
  EXPECT_EQ(users.users_size(), 3);  // The first admin, the cadre, the staff; not "system".
  list.set_role(v1::ROLE_CADRE);
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListUsers, list, &users).ok());
  ASSERT_EQ(users.users_size(), 1);
  EXPECT_EQ(users.users(0).rank(), v1::CADRE_RANK_COUNTY_RANK);
  EXPECT_EQ(users.users(0).unit_id(), "u-1");
  list.Clear();
  list.set_scope_prefix("620102");
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListUsers, list, &users).ok());
  ASSERT_EQ(users.users_size(), 1);
  EXPECT_EQ(users.users(0).name(), "鄉鎮幹事");
  EXPECT_EQ(users.users(0).phone(), "+86 931-1234567");
}

TEST_F(AdminServiceTest, UserValidationFollowsTheRole) {
  Import(kSmallTree);
  Unit("u-1", "one", "620102001000");
  auto upsert = [&](const v1::User& user) {
    v1::UpsertUserRequest request;
    *request.mutable_user() = user;
    v1::UpsertUserResponse response;
    return Call(&v1::AdminService::Stub::UpsertUser, request, &response);
  };
  v1::User cadre;
  cadre.set_name("c");
  cadre.set_role(v1::ROLE_CADRE);
  cadre.set_unit_id("u-1");
  EXPECT_EQ(upsert(cadre).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // No rank.
  cadre.set_rank(v1::CADRE_RANK_OTHER);
  cadre.add_scope_area_codes("620102");
  EXPECT_EQ(upsert(cadre).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // Scope from links.
  cadre.clear_scope_area_codes();
  cadre.set_unit_id("nope");
  EXPECT_EQ(upsert(cadre).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::User staff;
  staff.set_name("s");
  staff.set_role(v1::ROLE_TOWNSHIP_STAFF);
  EXPECT_EQ(upsert(staff).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // No scope.
  staff.add_scope_area_codes("620102");
  EXPECT_EQ(upsert(staff).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // Not a township.
  staff.set_scope_area_codes(0, "620102009");
  EXPECT_EQ(upsert(staff).error_code(), grpc::StatusCode::NOT_FOUND);  // No such township.
  staff.set_role(v1::ROLE_HQ_ANALYST);
  staff.set_rank(v1::CADRE_RANK_OTHER);
  staff.clear_scope_area_codes();
  EXPECT_EQ(upsert(staff).error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // Rank: cadres only.
  v1::User system;
  system.set_id("system");
  system.set_name("me");
  system.set_role(v1::ROLE_ADMIN);
  EXPECT_EQ(upsert(system).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::User no_role;
  no_role.set_name("x");
  EXPECT_EQ(upsert(no_role).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminServiceTest, AdminCannotDemoteOrDisableThemselves) {
  v1::User me;
  me.set_id(server::kFirstAdminUserId);
  me.set_name("Administrator");
  me.set_role(v1::ROLE_HQ_ANALYST);
  v1::UpsertUserRequest request;
  *request.mutable_user() = me;
  v1::UpsertUserResponse response;
  EXPECT_EQ(Call(&v1::AdminService::Stub::UpsertUser, request, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  request.mutable_user()->set_role(v1::ROLE_ADMIN);
  request.mutable_user()->set_disabled(true);
  EXPECT_EQ(Call(&v1::AdminService::Stub::UpsertUser, request, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  request.mutable_user()->set_disabled(false);
  request.mutable_user()->set_name("管理員");
  EXPECT_TRUE(Call(&v1::AdminService::Stub::UpsertUser, request, &response).ok());
}

// --- Links ------------------------------------------------------------------------------

TEST_F(AdminServiceTest, LinksStartListAndEnd) {
  Import(kSmallTree);
  Unit("u-1", "one", "620102001000");
  ASSERT_TRUE(Cadre("c-1", "u-1").ok());
  ASSERT_TRUE(harness_->RegisterHousehold("hh-1", "620102001001-0001", "620102001001").ok());

  v1::StartLinkResponse started;
  grpc::Status status = StartLink("", "c-1", v1::SUBJECT_KIND_HOUSEHOLD, "hh-1",
                                  v1::LINK_ROLE_HOUSEHOLD_HELPER, &started);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const v1::Link& link = started.link();
  EXPECT_EQ(link.id().size(), 36u);  // A UUID.
  EXPECT_EQ(link.cadre_id(), "c-1");
  EXPECT_EQ(link.target_kind(), v1::LINK_TARGET_KIND_HOUSEHOLD);
  EXPECT_EQ(link.area_code(), "620102001001");
  EXPECT_TRUE(link.active());
  EXPECT_EQ(link.started_offset(), started.offset());
  EXPECT_EQ(link.valid_from().year(), 2024);  // Today by the injected clock: 2024-03-01.
  EXPECT_EQ(link.valid_from().month(), 3);
  EXPECT_EQ(link.valid_from().day(), 1);

  // The same link twice is refused; a role that does not fit too; an unknown
  // household is not found; a township is no link target.
  EXPECT_EQ(StartLink("", "c-1", v1::SUBJECT_KIND_HOUSEHOLD, "hh-1", v1::LINK_ROLE_HOUSEHOLD_HELPER,
                      &started)
                .error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(
      StartLink("", "c-1", v1::SUBJECT_KIND_HOUSEHOLD, "hh-1", v1::LINK_ROLE_VILLAGE_UNIT, &started)
          .error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(StartLink("", "c-1", v1::SUBJECT_KIND_HOUSEHOLD, "hh-404",
                      v1::LINK_ROLE_HOUSEHOLD_HELPER, &started)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(StartLink("", "c-1", v1::SUBJECT_KIND_VILLAGE, "620102001000",
                      v1::LINK_ROLE_VILLAGE_CADRE, &started)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(StartLink("L-v", "c-1", v1::SUBJECT_KIND_VILLAGE, "620102001002",
                        v1::LINK_ROLE_VILLAGE_CADRE, &started)
                  .ok());
  ASSERT_TRUE(StartLink("L-c", "c-1", v1::SUBJECT_KIND_AREA, "620103000000",
                        v1::LINK_ROLE_COUNTY_LEADER, &started)
                  .ok());

  v1::ListLinksRequest list;
  list.set_cadre_id("c-1");
  v1::ListLinksResponse links;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListLinks, list, &links).ok());
  ASSERT_EQ(links.links_size(), 3);
  // By area: county 620103 comes after the villages of 620102.
  EXPECT_EQ(links.links(2).id(), "L-c");
  list.set_scope_prefix("620102001");
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListLinks, list, &links).ok());
  EXPECT_EQ(links.links_size(), 2);

  v1::EndLinkRequest end;
  end.set_link_id("L-v");
  end.set_reason(v1::LINK_END_REASON_OTHER);
  v1::EndLinkResponse ended;
  EXPECT_EQ(Call(&v1::AdminService::Stub::EndLink, end, &ended).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // OTHER needs a note.
  end.set_note("village merged");
  ASSERT_TRUE(Call(&v1::AdminService::Stub::EndLink, end, &ended).ok());
  EXPECT_EQ(ended.ended().end_reason(), v1::LINK_END_REASON_OTHER);
  EXPECT_EQ(ended.ended().ended_offset(), ended.offset());
  EXPECT_FALSE(ended.has_replacement());
  EXPECT_EQ(Call(&v1::AdminService::Stub::EndLink, end, &ended).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // Ended today: active through today, not tomorrow.
  list.Clear();
  list.set_cadre_id("c-1");
  list.set_active_only(true);
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListLinks, list, &links).ok());
  EXPECT_EQ(links.links_size(), 3);
  harness_->clock().Advance(absl::Hours(24));
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListLinks, list, &links).ok());
  EXPECT_EQ(links.links_size(), 2);
}

TEST_F(AdminServiceTest, ReplacementNeverLeavesTheHouseholdUnlinked) {
  Import(kSmallTree);
  Unit("u-1", "one", "620102001000");
  ASSERT_TRUE(Cadre("c-old", "u-1").ok());
  ASSERT_TRUE(Cadre("c-new", "u-1").ok());
  ASSERT_TRUE(harness_->RegisterHousehold("hh-1", "620102001001-0001", "620102001001").ok());
  v1::StartLinkResponse started;
  ASSERT_TRUE(StartLink("L-old", "c-old", v1::SUBJECT_KIND_HOUSEHOLD, "hh-1",
                        v1::LINK_ROLE_HOUSEHOLD_HELPER, &started)
                  .ok());

  v1::EndLinkRequest end;
  end.set_link_id("L-old");
  end.set_reason(v1::LINK_END_REASON_REPLACED);
  v1::EndLinkResponse response;
  grpc::Status status = Call(&v1::AdminService::Stub::EndLink, end, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // REPLACED names nobody.
  EXPECT_TRUE(absl::StrContains(status.error_message(), "replacement")) << status.error_message();

  end.mutable_valid_to()->set_year(2024);
  end.mutable_valid_to()->set_month(3);
  end.mutable_valid_to()->set_day(10);
  end.mutable_replacement()->set_cadre_id("c-new");
  end.mutable_replacement()->set_reason("c-old retired");
  end.mutable_replacement()->mutable_valid_from()->set_year(2024);
  end.mutable_replacement()->mutable_valid_from()->set_month(3);
  end.mutable_replacement()->mutable_valid_from()->set_day(12);
  status = Call(&v1::AdminService::Stub::EndLink, end, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // A day's gap.
  EXPECT_TRUE(absl::StrContains(status.error_message(), "gap")) << status.error_message();

  end.mutable_replacement()->clear_valid_from();  // The day after valid_to.
  uint64_t head = harness_->store().Head();
  status = Call(&v1::AdminService::Stub::EndLink, end, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.ended().id(), "L-old");
  EXPECT_EQ(response.ended().replaced_by_link_id(), response.replacement().id());
  EXPECT_EQ(response.replacement().replaces_link_id(), "L-old");
  EXPECT_EQ(response.replacement().cadre_id(), "c-new");
  EXPECT_EQ(response.replacement().start_reason(), "c-old retired");
  EXPECT_EQ(response.replacement().valid_from().day(), 11);
  EXPECT_EQ(response.replacement().role(), v1::LINK_ROLE_HOUSEHOLD_HELPER);

  // One commit: LinkEnded then LinkStarted at adjacent offsets.
  std::vector<sync::LoggedEvent> log = harness_->ReadLog();
  ASSERT_EQ(log.back().offset(), head + 2);
  EXPECT_TRUE(log[log.size() - 2].event().has_link_ended());
  EXPECT_TRUE(log.back().event().has_link_started());
  EXPECT_EQ(log.back().event().link_started().replaces_link_id(), "L-old");
  EXPECT_EQ(log.back().event().subject().id(), "hh-1");

  // On every day around the change the household has an active link.
  for (int day = 0; day < 15; ++day) {
    EXPECT_FALSE(LinksOf("hh-1", true).empty()) << "day " << day;
    harness_->clock().Advance(absl::Hours(24));
  }
  std::vector<v1::Link> all = LinksOf("hh-1", false);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id(), "L-old");  // By valid_from.

  // The domain's state holds the same links (pull snapshots, coverage).
  sync::StoreProjectionReader reader(&harness_->store());
  domain::DomainQueries queries(&reader, 1000, harness_->clock().AsClock());
  auto old_links = queries.LinksOfHolder(true, "c-old", false);
  ASSERT_TRUE(old_links.ok()) << old_links.status();
  ASSERT_EQ(old_links->size(), 1u);
  EXPECT_EQ((*old_links)[0].replaced_by_link_id(), response.replacement().id());
  EXPECT_EQ((*old_links)[0].end_reason(), v1::LINK_END_REASON_REPLACED);
  auto new_links = queries.LinksOfHolder(true, "c-new", true);
  ASSERT_TRUE(new_links.ok());
  ASSERT_EQ(new_links->size(), 1u);
  EXPECT_EQ((*new_links)[0].replaces_link_id(), "L-old");
}

TEST_F(AdminServiceTest, LinkToAHouseholdTheDomainDoesNotKnowIsNotFound) {
  Import(kSmallTree);
  Unit("u-1", "one", "620102001000");
  ASSERT_TRUE(Cadre("c-1", "u-1").ok());
  v1::StartLinkResponse started;
  grpc::Status status = StartLink("", "c-1", v1::SUBJECT_KIND_HOUSEHOLD, "never-registered",
                                  v1::LINK_ROLE_HOUSEHOLD_HELPER, &started);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
}

// --- Devices, enrollment and the audit log ------------------------------------------------

TEST_F(AdminServiceTest, EnrollmentToRevocationEndToEnd) {
  Import(kSmallTree);
  Unit("u-1", "one", "620102001000");
  ASSERT_TRUE(Cadre("c-1", "u-1").ok());
  auto device = testing::EnrollDevice(*harness_->channel(), token_, "c-1");
  ASSERT_TRUE(device.ok()) << device.status();
  auto sync = v1::SyncService::NewStub(harness_->channel());
  auto pull = [&] {
    v1::PullRequest request;
    v1::PullResponse response;
    auto context = ServiceHarness::Context(device->token);
    return sync->Pull(context.get(), request, &response).error_code();
  };
  EXPECT_EQ(pull(), grpc::StatusCode::OK);  // Authenticated and allowed: a first sync.

  v1::ListDevicesRequest list;
  list.set_user_id("c-1");
  v1::ListDevicesResponse devices;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListDevices, list, &devices).ok());
  ASSERT_EQ(devices.devices_size(), 1);
  EXPECT_EQ(devices.devices(0).model(), "test phone");
  EXPECT_EQ(base::FromTimestamp(devices.devices(0).enrolled_at()), harness_->clock().Now());

  v1::RevokeDeviceRequest revoke;
  revoke.set_device_id(device->device_id);
  v1::RevokeDeviceResponse revoked;
  EXPECT_EQ(Call(&v1::AdminService::Stub::RevokeDevice, revoke, &revoked).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);  // A reason is required.
  revoke.set_reason("cadre left");
  ASSERT_TRUE(Call(&v1::AdminService::Stub::RevokeDevice, revoke, &revoked).ok());
  EXPECT_EQ(pull(), grpc::StatusCode::UNAUTHENTICATED);

  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListDevices, list, &devices).ok());
  EXPECT_EQ(devices.devices_size(), 0);
  list.set_include_revoked(true);
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListDevices, list, &devices).ok());
  ASSERT_EQ(devices.devices_size(), 1);
  EXPECT_TRUE(devices.devices(0).revoked());
  EXPECT_EQ(devices.devices(0).revoke_reason(), "cadre left");

  v1::RevokeDeviceRequest unknown;
  unknown.set_device_id("dev-404");
  unknown.set_reason("x");
  EXPECT_EQ(Call(&v1::AdminService::Stub::RevokeDevice, unknown, &revoked).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

bool VerifyEd25519(const std::string& public_key, const std::string& message,
                   const std::string& signature) {
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()),
      public_key.size());
  if (key == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
            EVP_DigestVerify(
                ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

TEST_F(AdminServiceTest, EveryAdminChangeIsASignedEventOfTheCallingAdmin) {
  // A second admin makes the changes, so the actor is not the bootstrap's.
  v1::User second;
  second.set_id("ops");
  second.set_name("Ops");
  second.set_role(v1::ROLE_ADMIN);
  ASSERT_TRUE(testing::UpsertUser(*harness_->channel(), token_, second).ok());
  auto ops = testing::EnrollDevice(*harness_->channel(), token_, "ops");
  ASSERT_TRUE(ops.ok());
  uint64_t before = harness_->store().Head();
  token_ = ops->token;

  Import(kSmallTree);
  Unit("u-1", "one", "620102001000");
  ASSERT_TRUE(Cadre("c-1", "u-1").ok());
  ASSERT_TRUE(Cadre("c-2", "u-1").ok());
  v1::StartLinkResponse started;
  ASSERT_TRUE(StartLink("L-1", "c-1", v1::SUBJECT_KIND_VILLAGE, "620102001001",
                        v1::LINK_ROLE_VILLAGE_CADRE, &started)
                  .ok());
  v1::EndLinkRequest end;
  end.set_link_id("L-1");
  end.set_reason(v1::LINK_END_REASON_CADRE_LEFT);
  end.mutable_replacement()->set_cadre_id("c-2");
  end.mutable_replacement()->set_reason("c-1 left");
  v1::EndLinkResponse ended;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::EndLink, end, &ended).ok());
  auto device = testing::EnrollDevice(*harness_->channel(), token_, "c-1");
  ASSERT_TRUE(device.ok());
  v1::RevokeDeviceRequest revoke;
  revoke.set_device_id(device->device_id);
  revoke.set_reason("lost");
  v1::RevokeDeviceResponse revoked;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::RevokeDevice, revoke, &revoked).ok());

  std::vector<sync::LoggedEvent> log = harness_->ReadLog();
  ASSERT_FALSE(log.empty());
  EXPECT_TRUE(harness_->store().VerifyChain(1, harness_->store().Head()).ok());

  // The node device: enrolled first, its key verifies every server event.
  ASSERT_TRUE(log[0].event().has_device_enrolled());
  const std::string node_id = log[0].event().subject().id();
  const std::string node_key = log[0].event().device_enrolled().public_key();
  ASSERT_EQ(node_key.size(), 32u);

  std::multiset<v1::Event::BodyCase> kinds;
  uint64_t seq = 0;
  for (const sync::LoggedEvent& event : log) {
    EXPECT_EQ(event.event().device_id(), node_id);
    EXPECT_EQ(event.event().device_seq(), ++seq) << "offset " << event.offset();
    EXPECT_TRUE(VerifyEd25519(node_key, event.event_bytes(), event.signature()))
        << "offset " << event.offset();
    EXPECT_EQ(event.event().event_id().size(), 36u);
    EXPECT_NE(event.event().hlc(), 0u);
    if (event.offset() <= before) continue;
    kinds.insert(event.event().body_case());
    // Enrollment is the device's own act (the code's user); the rest is the admin's.
    std::string actor = event.event().has_device_enrolled() ? "c-1" : "ops";
    EXPECT_EQ(event.actor(), actor) << event.event().ShortDebugString();
  }
  EXPECT_EQ(kinds.count(v1::Event::kAreaImported), 1u);
  EXPECT_EQ(kinds.count(v1::Event::kUnitUpserted), 1u);
  EXPECT_EQ(kinds.count(v1::Event::kUserUpserted), 2u);
  EXPECT_EQ(kinds.count(v1::Event::kLinkStarted), 2u);
  EXPECT_EQ(kinds.count(v1::Event::kLinkEnded), 1u);
  EXPECT_EQ(kinds.count(v1::Event::kEnrollmentCodeIssued), 1u);
  EXPECT_EQ(kinds.count(v1::Event::kDeviceEnrolled), 1u);
  EXPECT_EQ(kinds.count(v1::Event::kDeviceRevoked), 1u);

  // Scope keys: a user's and a device's events carry their unit's area.
  for (const sync::LoggedEvent& event : log) {
    if (event.event().has_device_revoked()) {
      EXPECT_EQ(event.event().area_code(), "620102001000");
      EXPECT_EQ(event.event().subject().kind(), v1::SUBJECT_KIND_DEVICE);
    }
    if (event.event().has_link_ended()) {
      EXPECT_EQ(event.event().subject().kind(), v1::SUBJECT_KIND_VILLAGE);
      EXPECT_EQ(event.event().area_code(), "620102001001");
    }
  }
}

TEST_F(AdminServiceTest, BackupsAreTakenAndListedNewestFirst) {
  Import(kSmallTree);
  v1::CreateBackupRequest request;
  request.set_label("before import");
  v1::CreateBackupResponse first;
  grpc::Status status = Call(&v1::AdminService::Stub::CreateBackup, request, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(first.backup().head_offset(), harness_->store().Head());
  auto record = harness_->store().Read(first.backup().head_offset());
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(first.backup().head_hash(), record->hash);
  EXPECT_EQ(first.backup().label(), "before import");
  EXPECT_GT(first.backup().size_bytes(), 0u);
  EXPECT_TRUE(std::filesystem::exists(first.backup().path())) << first.backup().path();

  harness_->clock().Advance(absl::Minutes(1));
  Unit("u-1", "one", "620102001000");
  request.set_label("after");
  v1::CreateBackupResponse second;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::CreateBackup, request, &second).ok());
  EXPECT_GT(second.backup().head_offset(), first.backup().head_offset());

  v1::ListBackupsRequest list;
  v1::ListBackupsResponse backups;
  ASSERT_TRUE(Call(&v1::AdminService::Stub::ListBackups, list, &backups).ok());
  ASSERT_EQ(backups.backups_size(), 2);
  EXPECT_EQ(backups.backups(0).label(), "after");
  EXPECT_EQ(backups.backups(1).backup_id(), first.backup().backup_id());
}

}  // namespace
}  // namespace fieldsync
