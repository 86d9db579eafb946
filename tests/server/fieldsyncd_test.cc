// Starts the real fieldsyncd binary on port 0 and talks to it through a real
// gRPC channel: health, reflection, the v1 services, clean shutdown.
#include <sys/wait.h>

#include <filesystem>

#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/server/server_process.h"

namespace fieldsync {
namespace {

using ::fieldsync::testing::ServerProcess;
namespace reflection = ::grpc::reflection::v1alpha;

class FieldsyncdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = std::filesystem::path(::testing::TempDir()) /
                ("fieldsyncd_" + std::to_string(getpid()) + "_" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(data_dir_);
    auto server = ServerProcess::Start(FIELDSYNCD_PATH, {"--data_dir=" + data_dir_.string()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_.emplace(std::move(*server));
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  }

  void TearDown() override { std::filesystem::remove_all(data_dir_); }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return context;
  }

  std::vector<std::string> ListServices() {
    auto stub = reflection::ServerReflection::NewStub(channel_);
    auto context = Context();
    auto stream = stub->ServerReflectionInfo(context.get());
    reflection::ServerReflectionRequest request;
    request.set_list_services("");
    EXPECT_TRUE(stream->Write(request));
    stream->WritesDone();
    reflection::ServerReflectionResponse response;
    std::vector<std::string> names;
    while (stream->Read(&response)) {
      for (const auto& service : response.list_services_response().service()) {
        names.push_back(service.name());
      }
    }
    EXPECT_TRUE(stream->Finish().ok());
    return names;
  }

  std::filesystem::path data_dir_;
  std::optional<ServerProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(FieldsyncdTest, HealthIsServing) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  auto context = Context();
  grpc::Status status = stub->Check(context.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(FieldsyncdTest, ReflectionListsEveryV1Service) {
  std::vector<std::string> names = ListServices();
  for (const char* expected :
       {"fieldsync.v1.SyncService", "fieldsync.v1.StreamService", "fieldsync.v1.QueryService",
        "fieldsync.v1.ReportService", "fieldsync.v1.AdminService", "grpc.health.v1.Health"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end())
        << expected << " is not listed by reflection";
  }
}

TEST_F(FieldsyncdTest, ReflectionDescribesTheEventMessage) {
  auto stub = reflection::ServerReflection::NewStub(channel_);
  auto context = Context();
  auto stream = stub->ServerReflectionInfo(context.get());
  reflection::ServerReflectionRequest request;
  request.set_file_containing_symbol("fieldsync.v1.Event");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  reflection::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_file_descriptor_response())
      << response.error_response().error_message();
  google::protobuf::FileDescriptorProto file;
  bool found = false;
  for (const auto& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    ASSERT_TRUE(file.ParseFromString(bytes));
    for (const auto& message : file.message_type()) found = found || message.name() == "Event";
  }
  EXPECT_TRUE(found);
  while (stream->Read(&response)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(FieldsyncdTest, EmptyEnrollIsRefusedPrecisely) {
  // Enroll is the contract's first call of a device. An empty request must be
  // answered with a precise status (UNIMPLEMENTED until the service is built,
  // then a refusal of the missing code and key), never hang or crash.
  auto stub = v1::SyncService::NewStub(channel_);
  v1::EnrollRequest request;
  v1::EnrollResponse response;
  auto context = Context();
  grpc::Status status = stub->Enroll(context.get(), request, &response);
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::UNIMPLEMENTED ||
              status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
              status.error_code() == grpc::StatusCode::UNAUTHENTICATED)
      << status.error_code() << ": " << status.error_message();
}

TEST_F(FieldsyncdTest, SigtermExitsCleanlyAndKeepsTheStore) {
  int status = server_->StopWith(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(std::filesystem::exists(data_dir_ / "CURRENT"));
  // The same directory opens again in a new process.
  auto again = ServerProcess::Start(FIELDSYNCD_PATH, {"--data_dir=" + data_dir_.string()});
  ASSERT_TRUE(again.ok()) << again.status();
}

}  // namespace
}  // namespace fieldsync
