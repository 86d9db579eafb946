// Issue 9 point 10: RESOURCE_EXHAUSTED tells a client what to do without parsing the message.
// The trailer `fieldsync-error-bin` carries a v1.ErrorDetail: ACTION_MAKE_SMALLER with the
// limit's name, value and what the request asked for (a push over max_push_events or
// max_push_bytes, a blob over max_blob_bytes), or ACTION_RETRY_LATER with retry_after_ms
// (the device's request rate; also in the trailer `retry-after-ms`). Over real gRPC.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr char kDetailTrailer[] = "fieldsync-error-bin";

std::multimap<std::string, std::string> TrailersOf(const grpc::ClientContext& context) {
  std::multimap<std::string, std::string> out;
  for (const auto& [key, value] : context.GetServerTrailingMetadata()) {
    out.emplace(std::string(key.data(), key.size()), std::string(value.data(), value.size()));
  }
  return out;
}

class PushLimitDetailTest : public SyncWorld {
 protected:
  void Configure(v1::ServerConfig& config) override {
    // The world's own set-up pushes three events at once, well under 4 KB.
    config.mutable_limits()->set_max_push_events(3);
    config.mutable_limits()->set_max_push_bytes(6000);
    config.mutable_limits()->set_max_blob_bytes(1000);
  }
};

TEST_F(PushLimitDetailTest, APushOverMaxPushEventsSaysMakeItSmallerWithTheLimit) {
  std::vector<v1::Event> events;
  for (int i = 0; i < 4; ++i) events.push_back(phone().Visit(kH1, kV1));
  v1::PushResponse response;
  std::multimap<std::string, std::string> trailers;
  grpc::Status status = Push(phone(), events, &response, &trailers);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  std::optional<v1::ErrorDetail> detail = ErrorDetailIn(trailers);
  ASSERT_TRUE(detail.has_value()) << "no " << kDetailTrailer << " trailer";
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_MAKE_SMALLER);
  EXPECT_EQ(detail->limit(), "limits.max_push_events");
  EXPECT_EQ(detail->limit_value(), 3u);
  EXPECT_EQ(detail->requested(), 4u);
  EXPECT_EQ(detail->retry_after_ms(), 0u);
  EXPECT_EQ(trailers.count("retry-after-ms"), 0u) << "a size limit is no reason to wait";
}

TEST_F(PushLimitDetailTest, APushOverMaxPushBytesSaysMakeItSmallerWithTheBytes) {
  const std::string notes(3000, 'x');
  std::vector<v1::Event> events = {phone().Visit(kH1, kV1, notes), phone().Visit(kH1, kV1, notes),
                                   phone().Visit(kH1, kV1, notes)};
  size_t bytes = 0;
  // The limit counts the event bytes as pushed (SignedEvent.event), not the signatures.
  for (const v1::Event& event : events) bytes += testsig::TestEventBytes(event).size();
  v1::PushResponse response;
  std::multimap<std::string, std::string> trailers;
  grpc::Status status = Push(phone(), events, &response, &trailers);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  std::optional<v1::ErrorDetail> detail = ErrorDetailIn(trailers);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_MAKE_SMALLER);
  EXPECT_EQ(detail->limit(), "limits.max_push_bytes");
  EXPECT_EQ(detail->limit_value(), 6000u);
  EXPECT_EQ(detail->requested(), bytes);
}

TEST_F(PushLimitDetailTest, ABlobOverMaxBlobBytesSaysMakeItSmaller) {
  auto context = ServiceHarness::Context(phone().token());
  v1::UploadBlobResponse response;
  auto writer = sync().UploadBlob(context.get(), &response);
  v1::UploadBlobRequest header;
  header.mutable_header()->set_sha256(std::string(32, '\x07'));
  header.mutable_header()->set_total_size(5000);
  header.mutable_header()->set_content_type("image/jpeg");
  writer->Write(header);
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  std::optional<v1::ErrorDetail> detail = ErrorDetailIn(*context);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_MAKE_SMALLER);
  EXPECT_EQ(detail->limit(), "limits.max_blob_bytes");
  EXPECT_EQ(detail->limit_value(), 1000u);
  EXPECT_EQ(detail->requested(), 5000u);
}

// A server whose devices may make one request a second, two at once.
class RateLimitDetailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            absl::StrCat("error_detail_", getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    std::filesystem::remove_all(dir_);
    v1::ServerConfig config;
    config.mutable_limits()->set_device_requests_per_second(1);
    config.mutable_limits()->set_device_request_burst(2);
    auto harness = ServiceHarness::Start(dir_, config);
    ASSERT_TRUE(harness.ok()) << harness.status();
    harness_ = *std::move(harness);
    sync_ = v1::SyncService::NewStub(harness_->channel());
  }
  void TearDown() override {
    harness_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<ServiceHarness> harness_;
  std::unique_ptr<v1::SyncService::Stub> sync_;
};

TEST_F(RateLimitDetailTest, TheDeviceRateLimitSaysRetryLaterWithTheWait) {
  // The harness's first admin is a device like any other: its third call at once is over.
  grpc::Status status;
  std::multimap<std::string, std::string> trailers;
  for (int i = 0; i < 3; ++i) {
    auto context = ServiceHarness::Context(harness_->admin_token());
    v1::GetSchemaResponse response;
    status = sync_->GetSchema(context.get(), v1::GetSchemaRequest(), &response);
    trailers = TrailersOf(*context);
    if (!status.ok()) break;
  }
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  std::optional<v1::ErrorDetail> detail = ErrorDetailIn(trailers);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_RETRY_LATER);
  EXPECT_EQ(detail->limit(), "limits.device_requests_per_second");
  EXPECT_EQ(detail->limit_value(), 1u);
  // One token a second, none left: at most a second's wait (the clock is the harness's).
  EXPECT_GT(detail->retry_after_ms(), 0u);
  EXPECT_LE(detail->retry_after_ms(), 1000u);
  // The text trailer says the same.
  auto it = trailers.find("retry-after-ms");
  ASSERT_NE(it, trailers.end());
  uint64_t trailer_ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(it->second, &trailer_ms)) << it->second;
  EXPECT_EQ(trailer_ms, detail->retry_after_ms());
  EXPECT_EQ(trailers.count(kDetailTrailer), 1u) << "the detail is sent once";
}

}  // namespace
}  // namespace fieldsync::testing
