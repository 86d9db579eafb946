// Identity and authentication of fieldsyncd against a real gRPC server on
// port 0: the first admin, bearer tokens, enrollment codes, revocation, the
// per-device rate limit and draining. Every refusal is checked for its code
// and for a message that says why.
#include "server/identity.h"

#include <filesystem>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/time.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/service_harness.h"

namespace fieldsync {
namespace {

using ::fieldsync::testing::ServiceHarness;

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("identity_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Start();
  }
  void TearDown() override {
    harness_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Start(v1::ServerConfig config = {}) {
    harness_.reset();
    auto harness = ServiceHarness::Start(dir_.string(), std::move(config));
    ASSERT_TRUE(harness.ok()) << harness.status();
    harness_ = *std::move(harness);
    if (!harness_->admin_token().empty()) admin_token_ = harness_->admin_token();
    admin_ = v1::AdminService::NewStub(harness_->channel());
    sync_ = v1::SyncService::NewStub(harness_->channel());
  }

  grpc::Status ListUnitsWith(const std::string& token) {
    v1::ListUnitsRequest request;
    v1::ListUnitsResponse response;
    auto context = ServiceHarness::Context(token);
    return admin_->ListUnits(context.get(), request, &response);
  }

  grpc::Status ListUnitsWithHeader(const std::string& header) {
    v1::ListUnitsRequest request;
    v1::ListUnitsResponse response;
    auto context = ServiceHarness::Context("");
    context->AddMetadata("authorization", header);
    return admin_->ListUnits(context.get(), request, &response);
  }

  v1::IssueEnrollmentCodeResponse IssueCode(const std::string& user_id,
                                            std::optional<absl::Duration> ttl = std::nullopt) {
    v1::IssueEnrollmentCodeRequest request;
    request.set_user_id(user_id);
    if (ttl.has_value()) request.mutable_ttl()->set_seconds(absl::ToInt64Seconds(*ttl));
    v1::IssueEnrollmentCodeResponse response;
    auto context = ServiceHarness::Context(admin_token_);
    grpc::Status status = admin_->IssueEnrollmentCode(context.get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  grpc::Status Enroll(const std::string& code, v1::EnrollResponse* response,
                      std::string key = std::string(32, '\x01')) {
    v1::EnrollRequest request;
    request.set_code(code);
    request.set_ed25519_public_key(key);
    request.set_device_model("HUAWEI Y7");
    request.set_device_name("張三的手機");
    auto context = ServiceHarness::Context("");
    return sync_->Enroll(context.get(), request, response);
  }

  // An admin user other than the first, with a device token.
  testing::EnrolledDevice SecondAdminDevice() {
    v1::User user;
    user.set_id("admin2");
    user.set_name("Second Admin");
    user.set_role(v1::ROLE_ADMIN);
    auto upserted = testing::UpsertUser(*harness_->channel(), admin_token_, user);
    EXPECT_TRUE(upserted.ok()) << upserted.status();
    auto device = testing::EnrollDevice(*harness_->channel(), admin_token_, "admin2");
    EXPECT_TRUE(device.ok()) << device.status();
    return device.value_or(testing::EnrolledDevice{});
  }

  std::filesystem::path dir_;
  std::unique_ptr<ServiceHarness> harness_;
  std::string admin_token_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<v1::SyncService::Stub> sync_;
};

TEST_F(IdentityTest, FirstStartCreatesAnAdminWhoseTokenWorks) {
  ASSERT_FALSE(admin_token_.empty());
  EXPECT_TRUE(server::IsWellFormedToken(admin_token_));
  grpc::Status status = ListUnitsWith(admin_token_);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(IdentityTest, RestartKeepsTheAdminAndMakesNoNewToken) {
  std::string first = admin_token_;
  Start();
  EXPECT_TRUE(harness_->admin_token().empty());
  grpc::Status status = ListUnitsWith(first);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(IdentityTest, CallWithoutTokenIsUnauthenticated) {
  grpc::Status status = ListUnitsWith("");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "missing bearer token"))
      << status.error_message();
}

TEST_F(IdentityTest, MalformedAuthorizationIsUnauthenticated) {
  grpc::Status basic = ListUnitsWithHeader("Basic dXNlcjpwYXNz");
  EXPECT_EQ(basic.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(basic.error_message(), "malformed authorization header"));
  grpc::Status garbage = ListUnitsWithHeader("Bearer not-a-token");
  EXPECT_EQ(garbage.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(garbage.error_message(), "malformed bearer token"));
  grpc::Status truncated = ListUnitsWithHeader("Bearer " + admin_token_.substr(0, 20));
  EXPECT_EQ(truncated.error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(IdentityTest, UnknownTokenIsUnauthenticated) {
  grpc::Status status = ListUnitsWith(server::NewToken());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "unknown bearer token"))
      << status.error_message();
}

TEST_F(IdentityTest, SchemeIsCaseInsensitive) {
  grpc::Status status = ListUnitsWithHeader("bearer " + admin_token_);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(IdentityTest, EnrolledDeviceGetsAWorkingTokenBoundToTheCodesUser) {
  testing::EnrolledDevice device = SecondAdminDevice();
  ASSERT_FALSE(device.token.empty());
  grpc::Status status = ListUnitsWith(device.token);
  EXPECT_TRUE(status.ok()) << status.error_message();

  v1::ListDevicesRequest request;
  request.set_user_id("admin2");
  v1::ListDevicesResponse response;
  auto context = ServiceHarness::Context(admin_token_);
  ASSERT_TRUE(admin_->ListDevices(context.get(), request, &response).ok());
  ASSERT_EQ(response.devices_size(), 1);
  EXPECT_EQ(response.devices(0).id(), device.device_id);
  EXPECT_EQ(response.devices(0).user_id(), "admin2");
  EXPECT_EQ(response.devices(0).public_key(), std::string(32, '\x07'));
}

TEST_F(IdentityTest, RevokedDeviceIsRefusedAtOnce) {
  testing::EnrolledDevice device = SecondAdminDevice();
  ASSERT_TRUE(ListUnitsWith(device.token).ok());

  v1::RevokeDeviceRequest request;
  request.set_device_id(device.device_id);
  request.set_reason("phone lost");
  v1::RevokeDeviceResponse response;
  auto context = ServiceHarness::Context(admin_token_);
  grpc::Status revoke = admin_->RevokeDevice(context.get(), request, &response);
  ASSERT_TRUE(revoke.ok()) << revoke.error_message();
  EXPECT_TRUE(response.device().revoked());
  EXPECT_EQ(response.device().revoke_reason(), "phone lost");

  grpc::Status status = ListUnitsWith(device.token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "revoked")) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "phone lost")) << status.error_message();

  // Revoking twice says so.
  context = ServiceHarness::Context(admin_token_);
  EXPECT_EQ(admin_->RevokeDevice(context.get(), request, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(IdentityTest, AdminCannotRevokeTheDeviceOfTheirOwnCall) {
  testing::EnrolledDevice device = SecondAdminDevice();
  v1::RevokeDeviceRequest request;
  request.set_device_id(device.device_id);
  request.set_reason("oops");
  v1::RevokeDeviceResponse response;
  auto context = ServiceHarness::Context(device.token);
  EXPECT_EQ(admin_->RevokeDevice(context.get(), request, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(IdentityTest, DisabledUsersTokensStopWorking) {
  testing::EnrolledDevice device = SecondAdminDevice();
  v1::User user;
  user.set_id("admin2");
  user.set_name("Second Admin");
  user.set_role(v1::ROLE_ADMIN);
  user.set_disabled(true);
  ASSERT_TRUE(testing::UpsertUser(*harness_->channel(), admin_token_, user).ok());
  grpc::Status status = ListUnitsWith(device.token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "disabled")) << status.error_message();
}

TEST_F(IdentityTest, ExpiredEnrollmentCodeIsUnauthenticated) {
  v1::IssueEnrollmentCodeResponse code =
      IssueCode(std::string(server::kFirstAdminUserId), absl::Hours(1));
  harness_->clock().Advance(absl::Hours(1));
  v1::EnrollResponse response;
  grpc::Status status = Enroll(code.code(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "expired")) << status.error_message();
}

TEST_F(IdentityTest, CodeWorksUntilItExpires) {
  v1::IssueEnrollmentCodeResponse code =
      IssueCode(std::string(server::kFirstAdminUserId), absl::Hours(1));
  harness_->clock().Advance(absl::Minutes(59));
  v1::EnrollResponse response;
  grpc::Status status = Enroll(code.code(), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.user_id(), server::kFirstAdminUserId);
  EXPECT_EQ(response.role(), v1::ROLE_ADMIN);
}

TEST_F(IdentityTest, DefaultCodeLifetimeIsTheConfigured) {
  v1::ServerConfig config;
  config.mutable_auth()->set_enrollment_code_ttl_seconds(600);
  config.mutable_auth()->set_max_enrollment_code_ttl_seconds(3600);
  Start(config);
  absl::Time now = harness_->clock().Now();
  v1::IssueEnrollmentCodeResponse code = IssueCode(std::string(server::kFirstAdminUserId));
  EXPECT_EQ(base::FromTimestamp(code.expires_at()), now + absl::Seconds(600));
  // A longer request is capped by the maximum.
  code = IssueCode(std::string(server::kFirstAdminUserId), absl::Hours(48));
  EXPECT_EQ(base::FromTimestamp(code.expires_at()), now + absl::Seconds(3600));
}

TEST_F(IdentityTest, ReusedEnrollmentCodeIsUnauthenticated) {
  v1::IssueEnrollmentCodeResponse code = IssueCode(std::string(server::kFirstAdminUserId));
  v1::EnrollResponse first;
  ASSERT_TRUE(Enroll(code.code(), &first).ok());
  v1::EnrollResponse second;
  grpc::Status status = Enroll(code.code(), &second, std::string(32, '\x02'));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "already used")) << status.error_message();
}

TEST_F(IdentityTest, CodeIsAcceptedInAnyCaseAndWithoutHyphens) {
  v1::IssueEnrollmentCodeResponse code = IssueCode(std::string(server::kFirstAdminUserId));
  std::string typed = absl::AsciiStrToLower(code.code());
  typed.erase(std::remove(typed.begin(), typed.end(), '-'), typed.end());
  v1::EnrollResponse response;
  grpc::Status status = Enroll(typed, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(IdentityTest, ConcurrentEnrollmentsWithOneCodeEnrollExactlyOneDevice) {
  v1::IssueEnrollmentCodeResponse code = IssueCode(std::string(server::kFirstAdminUserId));
  constexpr int kCallers = 8;
  std::vector<grpc::Status> statuses(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      v1::EnrollResponse response;
      statuses[i] = Enroll(code.code(), &response, std::string(32, static_cast<char>(i + 1)));
    });
  }
  for (std::thread& t : callers) t.join();
  int ok = 0;
  for (const grpc::Status& status : statuses) {
    if (status.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
    }
  }
  EXPECT_EQ(ok, 1);
}

TEST_F(IdentityTest, UnknownOrMalformedCodeIsUnauthenticated) {
  v1::EnrollResponse response;
  grpc::Status unknown = Enroll(server::NewEnrollmentCode(), &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(unknown.error_message(), "unknown enrollment code"));
  grpc::Status malformed = Enroll("hello", &response);
  EXPECT_EQ(malformed.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(malformed.error_message(), "malformed"));
}

TEST_F(IdentityTest, EnrollNeedsA32ByteKey) {
  v1::IssueEnrollmentCodeResponse code = IssueCode(std::string(server::kFirstAdminUserId));
  v1::EnrollResponse response;
  grpc::Status status = Enroll(code.code(), &response, std::string(31, '\x01'));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "32 bytes")) << status.error_message();
  // The refused attempt did not use the code up.
  EXPECT_TRUE(Enroll(code.code(), &response).ok());
}

TEST_F(IdentityTest, EnrollmentCodeForUnknownUserIsNotFound) {
  v1::IssueEnrollmentCodeRequest request;
  request.set_user_id("nobody");
  v1::IssueEnrollmentCodeResponse response;
  auto context = ServiceHarness::Context(admin_token_);
  EXPECT_EQ(admin_->IssueEnrollmentCode(context.get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(IdentityTest, SecretsNeverReachTheLogOrTheProjections) {
  v1::IssueEnrollmentCodeResponse code = IssueCode(std::string(server::kFirstAdminUserId));
  v1::EnrollResponse enrolled;
  ASSERT_TRUE(Enroll(code.code(), &enrolled).ok());
  std::string normalized = *server::NormalizeEnrollmentCode(code.code());
  std::vector<std::string> secrets = {admin_token_, enrolled.token(), code.code(), normalized};

  auto projections = harness_->store().ScanProjections("", "", 1000000);
  ASSERT_TRUE(projections.ok());
  for (const auto& [key, value] : *projections) {
    for (const std::string& secret : secrets) {
      EXPECT_FALSE(absl::StrContains(key, secret)) << key;
      EXPECT_FALSE(absl::StrContains(value, secret)) << key;
    }
  }
  auto records = harness_->store().ReadAfter(0, storage::ReadLimits{});
  ASSERT_TRUE(records.ok());
  ASSERT_FALSE(records->empty());
  for (const storage::LogRecord& record : *records) {
    for (const std::string& secret : secrets) {
      EXPECT_FALSE(absl::StrContains(record.payload, secret)) << "offset " << record.offset;
    }
  }
  // What is stored is the hash.
  auto stored = harness_->store().GetProjection(
      server::auth_keys::Token(server::SecretHash(enrolled.token())));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->value_or(""), enrolled.device_id());
}

TEST_F(IdentityTest, RateLimitAnswersResourceExhaustedNamingTheLimit) {
  v1::ServerConfig config;
  config.mutable_limits()->set_device_requests_per_second(1);
  config.mutable_limits()->set_device_request_burst(2);
  Start(config);
  EXPECT_TRUE(ListUnitsWith(admin_token_).ok());
  EXPECT_TRUE(ListUnitsWith(admin_token_).ok());
  grpc::Status status = ListUnitsWith(admin_token_);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "limits.device_requests_per_second"))
      << status.error_message();
  // Time refills the bucket.
  harness_->clock().Advance(absl::Seconds(1));
  EXPECT_TRUE(ListUnitsWith(admin_token_).ok());
  EXPECT_EQ(ListUnitsWith(admin_token_).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(IdentityTest, RateLimitIsPerDevice) {
  v1::ServerConfig config;
  config.mutable_limits()->set_device_requests_per_second(1);
  config.mutable_limits()->set_device_request_burst(2);
  Start(config);
  testing::EnrolledDevice device = SecondAdminDevice();  // Two calls of the first admin.
  EXPECT_EQ(ListUnitsWith(admin_token_).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(ListUnitsWith(device.token).ok());
}

TEST_F(IdentityTest, DrainingServerAnswersUnavailable) {
  harness_->state().BeginDrain();
  grpc::Status status = ListUnitsWith(admin_token_);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "server is shutting down");
  v1::EnrollResponse response;
  EXPECT_EQ(Enroll(server::NewEnrollmentCode(), &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(harness_->state().WaitIdle(absl::Now() + absl::Seconds(10)));
}

TEST_F(IdentityTest, EveryCallReleasesItsSlot) {
  EXPECT_TRUE(ListUnitsWith(admin_token_).ok());
  EXPECT_EQ(ListUnitsWith("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  IssueCode(std::string(server::kFirstAdminUserId));
  // OnDone runs just after the client has its answer: wait for it, bounded.
  EXPECT_TRUE(harness_->state().WaitIdle(absl::Now() + absl::Seconds(10)));
}

// The same through the real server stack (config, call log interceptor).
TEST(FieldsyncServerIdentityTest, FirstAdminTokenWorksThroughTheRealServer) {
  std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / absl::StrCat("identity_real_", getpid());
  std::filesystem::remove_all(dir);
  v1::ServerConfig config;
  config.set_data_dir(dir.string());
  config.set_listen("127.0.0.1:0");
  config.set_metrics_listen("off");
  auto server = server::FieldsyncServer::Start(config);
  ASSERT_TRUE(server.ok()) << server.status();
  std::optional<std::string> token = (*server)->first_admin_token();
  ASSERT_TRUE(token.has_value());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                     grpc::InsecureChannelCredentials());
  auto admin = v1::AdminService::NewStub(channel);
  v1::ListUsersRequest request;
  v1::ListUsersResponse response;
  auto context = ServiceHarness::Context(*token);
  grpc::Status status = admin->ListUsers(context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.users_size(), 1);
  EXPECT_EQ(response.users(0).id(), server::kFirstAdminUserId);
  context = ServiceHarness::Context("");
  EXPECT_EQ(admin->ListUsers(context.get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  (*server)->Shutdown(absl::Now() + absl::Seconds(5));
  server->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fieldsync
