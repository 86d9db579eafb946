// Issue 9 point 5 (every RPC but Push's events): a request whose bytes do not parse, e.g. a
// string cut inside a UTF-8 character by a JS client, answers INVALID_ARGUMENT with a message
// naming the request type and the field (its path from the request), not gRPC C++'s
// UNIMPLEMENTED with an empty message. Raw bytes over a real channel (grpc::GenericStub) to
// one RPC of every service.
#include <grpcpp/generic/generic_stub.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fieldsync/v1/admin_service.pb.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "tests/server/service_harness.h"

namespace fieldsync::testing {
namespace {

// "😀" is F0 9F 98 80; a client that cut it after two bytes sends these.
const std::string kCutEmoji = std::string("ok\xF0\x9F", 4);

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

// A length-delimited field (string, bytes or message) in protobuf's wire format.
std::string Field(int number, const std::string& payload) {
  return Varint((static_cast<uint64_t>(number) << 3) | 2) + Varint(payload.size()) + payload;
}

// Writes one request message, half-closes, reads whatever comes, finishes: a unary or a
// server-streaming call on the wire.
grpc::Status CallWithBytes(const std::shared_ptr<grpc::Channel>& channel, const std::string& path,
                           const std::string& request, const std::string& token = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  grpc::CompletionQueue cq;
  auto wait = [&cq] {
    void* tag;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    return ok;
  };
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&context, path, &cq);
  call->StartCall(nullptr);
  if (wait()) {
    grpc::Slice slice(request);
    grpc::ByteBuffer buffer(&slice, 1);
    call->Write(buffer, nullptr);
    if (wait()) {
      call->WritesDone(nullptr);
      wait();
    }
    grpc::ByteBuffer response;
    call->Read(&response, nullptr);
    if (wait()) context.TryCancel();  // A message: the request parsed (a live stream).
  }
  grpc::Status status;
  call->Finish(&status, nullptr);
  wait();
  return status;
}

struct Case {
  std::string path;
  std::string request;
  std::string field;  // The path the message must name.
};

class MalformedRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("malformed_request_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    auto harness = ServiceHarness::Start(dir_.string());
    ASSERT_TRUE(harness.ok()) << harness.status();
    harness_ = *std::move(harness);
  }
  void TearDown() override {
    harness_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<ServiceHarness> harness_;
};

TEST_F(MalformedRequestTest, InvalidUtf8InAStringIsInvalidArgumentNamingTheFieldOnEveryService) {
  const std::vector<Case> cases = {
      {"/fieldsync.v1.SyncService/Enroll", Field(1, kCutEmoji), "code"},
      {"/fieldsync.v1.QueryService/GetHousehold", Field(1, kCutEmoji), "id"},
      // A string inside a nested message: UpsertUnitRequest.unit (1) . Unit.name (2).
      {"/fieldsync.v1.AdminService/UpsertUnit", Field(1, Field(1, "u-1") + Field(2, kCutEmoji)),
       "unit.name"},
      {"/fieldsync.v1.ReportService/GetAssessment", Field(1, kCutEmoji), "scope_prefix"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    grpc::Status status = CallWithBytes(harness_->channel(), c.path, c.request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "field " + c.field + " "))
        << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "UTF-8")) << status.error_message();
  }
}

// StreamService.Subscribe takes its request as raw bytes (server/stream_service.cc) and
// parses it itself, after the guard (server::ParseRawRequest): the same words as the
// interceptor's, naming the field.
TEST_F(MalformedRequestTest, ASubscribeRequestThatDoesNotParseIsInvalidArgumentNamingTheField) {
  grpc::Status status = CallWithBytes(harness_->channel(), "/fieldsync.v1.StreamService/Subscribe",
                                      Field(3, kCutEmoji), harness_->admin_token());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "field scope_prefixes "))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "fieldsync.v1.SubscribeRequest"))
      << status.error_message();

  const std::string truncated = std::string("\x1a\x05ok", 4);
  status = CallWithBytes(harness_->channel(), "/fieldsync.v1.StreamService/Subscribe", truncated,
                         harness_->admin_token());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(),
                                "does not parse as fieldsync.v1.SubscribeRequest"))
      << status.error_message();
}

TEST_F(MalformedRequestTest, BytesThatAreNoProtobufAreInvalidArgumentNamingTheRequestType) {
  // A length of 5 with 2 bytes behind it.
  const std::string truncated = std::string("\x0a\x05ok", 4);
  grpc::Status status =
      CallWithBytes(harness_->channel(), "/fieldsync.v1.QueryService/GetHousehold", truncated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "fieldsync.v1.GetHouseholdRequest"))
      << status.error_message();
}

// The field protobuf reported last on a thread may be another message's (an
// event's bytes parsed in a push on that thread): it is not this request's.
TEST(DescribeMalformedTest, AFieldTheRequestCannotHoldIsNotNamed) {
  const google::protobuf::Descriptor* type = v1::UpsertUnitRequest::descriptor();
  EXPECT_TRUE(absl::StrContains(server::DescribeMalformed(type, "fieldsync.v1.Unit.name"),
                                "request field unit.name (fieldsync.v1.Unit.name) is not valid"));
  const std::string stale = server::DescribeMalformed(type, "fieldsync.v1.Event.area_code");
  EXPECT_FALSE(absl::StrContains(stale, "area_code")) << stale;
  EXPECT_TRUE(absl::StrContains(stale, "does not parse as fieldsync.v1.UpsertUnitRequest: the "
                                       "bytes are not a protobuf encoding"))
      << stale;
}

TEST_F(MalformedRequestTest, AnUnknownMethodStaysUnimplemented) {
  grpc::Status status =
      CallWithBytes(harness_->channel(), "/fieldsync.v1.QueryService/NoSuchMethod", "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
}

TEST_F(MalformedRequestTest, AValidRequestIsAnsweredByItsHandler) {
  // Well-formed UTF-8 reaches the guard: no token.
  grpc::Status status = CallWithBytes(harness_->channel(), "/fieldsync.v1.QueryService/GetHousehold",
                                      Field(1, "ok\xF0\x9F\x98\x80"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
}

}  // namespace
}  // namespace fieldsync::testing
