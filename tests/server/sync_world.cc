#include "tests/server/sync_world.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace fieldsync::testing {
namespace {

constexpr char kAreasCsv[] =
    "code,parent,level,name\n"
    "620000000000,,province,甘肃省\n"
    "620100000000,620000000000,city,兰州市\n"
    "620102000000,620100000000,county,城关区\n"
    "620103000000,620100000000,county,七里河区\n"
    "620102001000,620102000000,township,甲乡\n"
    "620102002000,620102000000,township,乙乡\n"
    "620103001000,620103000000,township,丙乡\n"
    "620102001001,620102001000,village,一村\n"
    "620102001002,620102001000,village,二村\n"
    "620102002001,620102002000,village,三村\n"
    "620103001001,620103001000,village,四村\n";

}  // namespace

namespace {

template <typename Trailers>
std::optional<v1::ErrorDetail> DetailIn(const Trailers& trailers) {
  auto it = trailers.find("fieldsync-error-bin");
  if (it == trailers.end()) return std::nullopt;
  v1::ErrorDetail detail;
  if (!detail.ParseFromArray(it->second.data(), static_cast<int>(it->second.size()))) {
    return std::nullopt;
  }
  return detail;
}

}  // namespace

std::optional<v1::ErrorDetail> ErrorDetailIn(const grpc::ClientContext& context) {
  return DetailIn(context.GetServerTrailingMetadata());
}

std::optional<v1::ErrorDetail> ErrorDetailIn(
    const std::multimap<std::string, std::string>& trailers) {
  return DetailIn(trailers);
}

std::string OutcomeOf(const v1::PushResult& result) {
  switch (result.outcome_case()) {
    case v1::PushResult::kAccepted:
      return "accepted";
    case v1::PushResult::kDuplicate:
      return "duplicate";
    case v1::PushResult::kConflictRecorded:
      return "conflict";
    case v1::PushResult::kRejected:
      return v1::RejectionCode_Name(result.rejected().code());
    case v1::PushResult::kHeld:
      return "held";
    default:
      return "none";
  }
}

void SyncWorld::SetUp() {
  dir_ = (std::filesystem::path(::testing::TempDir()) /
          absl::StrCat("sync_world_", getpid(), "_",
                       ::testing::UnitTest::GetInstance()->current_test_info()->name()))
             .string();
  std::filesystem::remove_all(dir_);
  config_.mutable_limits()->set_device_requests_per_second(100000);
  config_.mutable_limits()->set_device_request_burst(100000);
  Configure(config_);
  auto harness = ServiceHarness::Start(dir_, config_);
  ASSERT_TRUE(harness.ok()) << harness.status();
  harness_ = *std::move(harness);
  admin_token_ = harness_->admin_token();
  MakeStubs();
  BuildWorld();
}

void SyncWorld::TearDown() {
  harness_.reset();
  std::filesystem::remove_all(dir_);
}

void SyncWorld::MakeStubs() {
  sync_ = v1::SyncService::NewStub(harness_->channel());
  query_ = v1::QueryService::NewStub(harness_->channel());
  stream_ = v1::StreamService::NewStub(harness_->channel());
  admin_ = v1::AdminService::NewStub(harness_->channel());
}

void SyncWorld::Restart() {
  absl::Time now = harness_->clock().Now();
  harness_.reset();
  auto harness = ServiceHarness::Start(dir_, config_);
  ASSERT_TRUE(harness.ok()) << harness.status();
  harness_ = *std::move(harness);
  // Time goes on across the restart.
  harness_->clock().Advance(now - harness_->clock().Now() + absl::Minutes(1));
  MakeStubs();
}

void SyncWorld::BuildWorld() {
  auto admin_call = [&](auto rpc, const auto& request, auto* response) {
    auto context = ServiceHarness::Context(admin_token_);
    grpc::Status status = (admin_.get()->*rpc)(context.get(), request, response);
    ASSERT_TRUE(status.ok()) << status.error_message() << " in " << request.ShortDebugString();
  };
  v1::ImportAreasRequest areas;
  areas.set_csv(kAreasCsv);
  v1::ImportAreasResponse imported;
  admin_call(&v1::AdminService::Stub::ImportAreas, areas, &imported);
  ASSERT_EQ(imported.errors_size(), 0) << imported.DebugString();
  v1::UpsertUnitRequest unit;
  unit.mutable_unit()->set_id("U1");
  unit.mutable_unit()->set_name("unit U1");
  unit.mutable_unit()->set_area_code("620102001000");
  v1::UpsertUnitResponse unit_done;
  admin_call(&v1::AdminService::Stub::UpsertUnit, unit, &unit_done);

  server::Clock clock = DeviceClock();
  auto user = [&](const std::string& id, v1::Role role, std::vector<std::string> scope,
                  std::unique_ptr<TestDevice>* device) {
    v1::User u;
    u.set_id(id);
    u.set_name(id);
    u.set_role(role);
    if (role == v1::ROLE_CADRE) {
      u.set_rank(v1::CADRE_RANK_OTHER);
      u.set_unit_id("U1");
    }
    for (const std::string& code : scope) u.add_scope_area_codes(code);
    auto upserted = UpsertUser(*harness_->channel(), admin_token_, u);
    ASSERT_TRUE(upserted.ok()) << upserted.status();
    *device = std::make_unique<TestDevice>(clock);
    absl::Status enrolled = (*device)->Enroll(*harness_->channel(), admin_token_, id);
    ASSERT_TRUE(enrolled.ok()) << enrolled;
  };
  user("cadre1", v1::ROLE_CADRE, {}, &phone_);
  user("town1", v1::ROLE_TOWNSHIP_STAFF, {kTownA1}, &tablet_);
  user("county1", v1::ROLE_COUNTY_STAFF, {kCountyA}, &county_);
  user("county2", v1::ROLE_COUNTY_STAFF, {"620103"}, &county_b_);
  std::unique_ptr<TestDevice> hq;
  user("hq1", v1::ROLE_HQ_ANALYST, {}, &hq);
  hq_token_ = hq->token();

  MustPush(tablet(), {tablet().Register(kH1, kV1, "N-1"), tablet().Register(kH2, kV1, "N-2"),
                      tablet().Register(kH3, kV2, "N-3")});
  MustPush(county_b(), {county_b().Register(kH4, kV4, "N-4")});
  ASSERT_TRUE(
      StartLink("L-h1", "cadre1", v1::SUBJECT_KIND_HOUSEHOLD, kH1, v1::LINK_ROLE_HOUSEHOLD_HELPER)
          .ok());
}

grpc::Status SyncWorld::Push(const TestDevice& device, const std::vector<v1::Event>& events,
                             v1::PushResponse* response,
                             std::multimap<std::string, std::string>* trailers) {
  v1::PushRequest request;
  for (const v1::Event& event : events) *request.add_events() = SealForPush(event);
  auto context = ServiceHarness::Context(device.token());
  grpc::Status status = sync_->Push(context.get(), request, response);
  if (trailers != nullptr) {
    for (const auto& [key, value] : context->GetServerTrailingMetadata()) {
      trailers->emplace(std::string(key.data(), key.size()),
                        std::string(value.data(), value.size()));
    }
  }
  return status;
}

grpc::Status SyncWorld::PushSigned(const TestDevice& device,
                                   const std::vector<v1::SignedEvent>& events,
                                   v1::PushResponse* response) {
  v1::PushRequest request;
  for (const v1::SignedEvent& event : events) *request.add_events() = event;
  auto context = ServiceHarness::Context(device.token());
  return sync_->Push(context.get(), request, response);
}

v1::PushResponse SyncWorld::MustPush(const TestDevice& device,
                                     const std::vector<v1::Event>& events) {
  v1::PushResponse response;
  grpc::Status status = Push(device, events, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.results_size(), static_cast<int>(events.size()));
  for (const v1::PushResult& result : response.results()) {
    EXPECT_TRUE(result.has_accepted() || result.has_conflict_recorded())
        << result.ShortDebugString();
  }
  return response;
}

grpc::Status SyncWorld::Pull(const std::string& token, const v1::PullRequest& request,
                             v1::PullResponse* response) {
  auto context = ServiceHarness::Context(token);
  return sync_->Pull(context.get(), request, response);
}

std::vector<v1::PullResponse> SyncWorld::PullAll(const std::string& token, v1::Checkpoint cursor) {
  std::vector<v1::PullResponse> pages;
  for (int i = 0; i < 1000; ++i) {
    v1::PullRequest request;
    *request.mutable_cursor() = cursor;
    v1::PullResponse response;
    grpc::Status status = Pull(token, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) break;
    cursor = response.checkpoint();
    pages.push_back(response);
    if (!response.more()) break;
  }
  return pages;
}

grpc::Status SyncWorld::StartLink(const std::string& link_id, const std::string& cadre_id,
                                  v1::SubjectKind kind, const std::string& target,
                                  v1::LinkRole role) {
  v1::StartLinkRequest request;
  request.set_link_id(link_id);
  request.set_cadre_id(cadre_id);
  request.mutable_target()->set_kind(kind);
  request.mutable_target()->set_id(target);
  request.set_role(role);
  // From a month ago, so that EndLink can end it yesterday.
  *request.mutable_valid_from() = server::AddDays(server::DateOf(harness_->clock().Now()), -30);
  v1::StartLinkResponse response;
  auto context = ServiceHarness::Context(admin_token_);
  return admin_->StartLink(context.get(), request, &response);
}

grpc::Status SyncWorld::EndLink(const std::string& link_id) {
  v1::EndLinkRequest request;
  request.set_link_id(link_id);
  request.set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
  // Ended yesterday: out of the scope at once.
  *request.mutable_valid_to() = server::AddDays(server::DateOf(harness_->clock().Now()), -1);
  v1::EndLinkResponse response;
  auto context = ServiceHarness::Context(admin_token_);
  return admin_->EndLink(context.get(), request, &response);
}

}  // namespace fieldsync::testing
