// Regression tests of issue 7 (item 14b, 14c) for identity, through the real
// gRPC surface:
//   - the public Enroll RPC is rate limited per peer address and globally,
//     answering RESOURCE_EXHAUSTED with the time to wait (message and the
//     `retry-after-ms` trailer), and admits again once that time passed;
//   - disabling a user revokes its devices for good: re-enabled, the user's
//     old tokens stay refused, and a device enrolled anew works.
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server/service_harness.h"

namespace fieldsync::testing {
namespace {

class IdentityDefectsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    harness_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Start(v1::ServerConfig config) {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("identity_defects_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto harness = ServiceHarness::Start(dir_.string(), std::move(config));
    ASSERT_TRUE(harness.ok()) << harness.status();
    harness_ = *std::move(harness);
    admin_ = v1::AdminService::NewStub(harness_->channel());
    sync_ = v1::SyncService::NewStub(harness_->channel());
  }

  // An Enroll with a well-formed code nobody issued; `retry_after_ms` gets
  // the trailer if there is one.
  grpc::Status EnrollWithUnknownCode(std::string* retry_after_ms = nullptr) {
    v1::EnrollRequest request;
    request.set_code("7KQ2M-9XR4T-HC3VN-P0WZE");
    request.set_ed25519_public_key(std::string(32, '\x01'));
    v1::EnrollResponse response;
    auto context = ServiceHarness::Context("");
    grpc::Status status = sync_->Enroll(context.get(), request, &response);
    if (retry_after_ms != nullptr) {
      auto found = context->GetServerTrailingMetadata().find("retry-after-ms");
      *retry_after_ms = found == context->GetServerTrailingMetadata().end()
                            ? ""
                            : std::string(found->second.data(), found->second.size());
    }
    return status;
  }

  grpc::Status ListUnitsWith(const std::string& token) {
    v1::ListUnitsRequest request;
    v1::ListUnitsResponse response;
    auto context = ServiceHarness::Context(token);
    return admin_->ListUnits(context.get(), request, &response);
  }

  absl::StatusOr<v1::User> SetAdmin2(bool disabled) {
    v1::User user;
    user.set_id("admin2");
    user.set_name("Second Admin");
    user.set_role(v1::ROLE_ADMIN);
    user.set_disabled(disabled);
    return UpsertUser(*harness_->channel(), harness_->admin_token(), user);
  }

  std::filesystem::path dir_;
  std::unique_ptr<ServiceHarness> harness_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<v1::SyncService::Stub> sync_;
};

TEST_F(IdentityDefectsTest, EnrollFromOnePeerIsRateLimitedWithARetryHint) {
  v1::ServerConfig config;
  config.mutable_auth()->set_enroll_per_peer_per_minute(3);
  Start(config);
  for (int i = 0; i < 3; ++i) {
    grpc::Status status = EnrollWithUnknownCode();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  }
  std::string retry_after;
  grpc::Status limited = EnrollWithUnknownCode(&retry_after);
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << limited.error_message();
  EXPECT_TRUE(absl::StrContains(limited.error_message(), "auth.enroll_per_peer_per_minute=3"))
      << limited.error_message();
  EXPECT_TRUE(absl::StrContains(limited.error_message(), "from 127.0.0.1"))
      << limited.error_message();
  EXPECT_TRUE(absl::StrContains(limited.error_message(), "retry in 20s"))
      << limited.error_message();
  int64_t wait_ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(retry_after, &wait_ms)) << "trailer: '" << retry_after << "'";
  EXPECT_EQ(wait_ms, 20000);

  // Once the hinted time has passed, one more attempt is admitted.
  harness_->clock().Advance(absl::Milliseconds(wait_ms));
  EXPECT_EQ(EnrollWithUnknownCode().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(EnrollWithUnknownCode().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(IdentityDefectsTest, EnrollFromAllPeersTogetherIsRateLimited) {
  v1::ServerConfig config;
  config.mutable_auth()->set_enroll_per_peer_per_minute(1000);
  config.mutable_auth()->set_enroll_per_minute(2);
  Start(config);
  EXPECT_EQ(EnrollWithUnknownCode().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(EnrollWithUnknownCode().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  std::string retry_after;
  grpc::Status limited = EnrollWithUnknownCode(&retry_after);
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << limited.error_message();
  EXPECT_TRUE(absl::StrContains(limited.error_message(), "auth.enroll_per_minute=2"))
      << limited.error_message();
  EXPECT_EQ(retry_after, "30000");
}

TEST_F(IdentityDefectsTest, AReEnabledUsersOldTokensStayRefusedAndNewEnrollmentsWork) {
  Start({});
  ASSERT_TRUE(SetAdmin2(false).ok());
  absl::StatusOr<EnrolledDevice> old_device =
      EnrollDevice(*harness_->channel(), harness_->admin_token(), "admin2");
  ASSERT_TRUE(old_device.ok()) << old_device.status();
  ASSERT_TRUE(ListUnitsWith(old_device->token).ok());

  ASSERT_TRUE(SetAdmin2(true).ok());
  EXPECT_EQ(ListUnitsWith(old_device->token).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(SetAdmin2(false).ok());

  grpc::Status status = ListUnitsWith(old_device->token);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(),
                                absl::StrCat("device ", old_device->device_id, " was revoked")))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "user admin2 was disabled"))
      << status.error_message();

  // The device is listed as revoked, with the reason.
  v1::ListDevicesRequest list;
  list.set_user_id("admin2");
  list.set_include_revoked(true);
  v1::ListDevicesResponse devices;
  auto context = ServiceHarness::Context(harness_->admin_token());
  ASSERT_TRUE(admin_->ListDevices(context.get(), list, &devices).ok());
  ASSERT_EQ(devices.devices_size(), 1);
  EXPECT_TRUE(devices.devices(0).revoked());
  EXPECT_EQ(devices.devices(0).revoke_reason(), "user admin2 was disabled");

  // The re-enabled user enrolls anew.
  absl::StatusOr<EnrolledDevice> new_device =
      EnrollDevice(*harness_->channel(), harness_->admin_token(), "admin2");
  ASSERT_TRUE(new_device.ok()) << new_device.status();
  EXPECT_TRUE(ListUnitsWith(new_device->token).ok());
}

}  // namespace
}  // namespace fieldsync::testing
