// Graceful shutdown: health turns NOT_SERVING, new calls are refused, calls in
// flight finish, the store closes, and the real binary exits 0 on SIGTERM.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "server/server_state.h"
#include "tests/server/server_process.h"

namespace fieldsync::server {
namespace {

namespace health = ::grpc::health::v1;
using ::fieldsync::testing::ServerProcess;

// A generous safety timeout for waits that normally end at once.
constexpr absl::Duration kSafety = absl::Seconds(30);

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

grpc::Status Check(const std::shared_ptr<grpc::Channel>& channel,
                   health::HealthCheckResponse* response) {
  auto stub = health::Health::NewStub(channel);
  auto context = Context();
  return stub->Check(context.get(), health::HealthCheckRequest(), response);
}

class ShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_dir_ = std::filesystem::path(::testing::TempDir()) /
                ("shutdown_" + std::to_string(getpid()) + "_" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(data_dir_);
  }
  void TearDown() override { std::filesystem::remove_all(data_dir_); }

  std::unique_ptr<FieldsyncServer> StartInProcess() {
    v1::ServerConfig config;
    config.set_data_dir(data_dir_.string());
    config.set_listen("127.0.0.1:0");
    config.set_metrics_listen("off");
    auto server = FieldsyncServer::Start(config);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  static std::shared_ptr<grpc::Channel> Channel(int port) {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                               grpc::InsecureChannelCredentials());
  }

  std::filesystem::path data_dir_;
};

TEST_F(ShutdownTest, DrainTurnsHealthNotServingAndWaitsForTheCallInFlight) {
  std::unique_ptr<FieldsyncServer> server = StartInProcess();
  ASSERT_NE(server, nullptr);
  auto channel = Channel(server->port());

  // A service call in flight, as the services' guard registers one.
  ASSERT_TRUE(server->state()->TryStartCall());

  auto stub = health::Health::NewStub(channel);
  auto watch_context = Context();
  auto watch = stub->Watch(watch_context.get(), health::HealthCheckRequest());
  health::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), health::HealthCheckResponse::SERVING);

  absl::Notification shut_down;
  std::thread shutdown([&] {
    server->Shutdown(absl::Now() + kSafety);
    shut_down.Notify();
  });

  // The watcher hears NOT_SERVING while the drain waits for the call.
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), health::HealthCheckResponse::NOT_SERVING);
  health::HealthCheckResponse checked;
  ASSERT_TRUE(Check(channel, &checked).ok());
  EXPECT_EQ(checked.status(), health::HealthCheckResponse::NOT_SERVING);
  // New service calls are refused (the guard answers UNAVAILABLE on this).
  EXPECT_FALSE(server->state()->TryStartCall());
  EXPECT_TRUE(server->state()->draining());
  // The drain cannot end while the call is in flight.
  EXPECT_FALSE(shut_down.HasBeenNotified());

  server->state()->FinishCall();
  ASSERT_TRUE(shut_down.WaitForNotificationWithTimeout(kSafety));
  shutdown.join();
  // The Watch stream was cut by the shutdown, not left hanging.
  while (watch->Read(&update)) {
  }
  watch->Finish().IgnoreError();

  health::HealthCheckResponse after;
  EXPECT_EQ(Check(channel, &after).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ShutdownTest, GraceDeadlineEndsTheDrainOfACallThatNeverFinishes) {
  std::unique_ptr<FieldsyncServer> server = StartInProcess();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->state()->TryStartCall());
  server->Shutdown(absl::Now());  // Returns although the call never finishes.
  EXPECT_EQ(server->state()->in_flight(), 1);
  server->state()->FinishCall();
}

TEST_F(ShutdownTest, ShutdownIsIdempotentAndTheStoreReopens) {
  std::unique_ptr<FieldsyncServer> server = StartInProcess();
  ASSERT_NE(server, nullptr);
  server->Shutdown(absl::Now() + kSafety);
  server->Shutdown(absl::Now() + kSafety);
  server->Wait();
  server.reset();
  EXPECT_NE(StartInProcess(), nullptr);
}

TEST_F(ShutdownTest, SigtermExitsZeroAndLaterCallsAreRefused) {
  auto process = ServerProcess::Start(FIELDSYNCD_PATH, {"--data_dir=" + data_dir_.string()});
  ASSERT_TRUE(process.ok()) << process.status();
  auto channel = Channel(process->port());
  health::HealthCheckResponse response;
  ASSERT_TRUE(Check(channel, &response).ok());

  int status = process->StopWith(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(Check(channel, &response).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ShutdownTest, SigintDuringAHealthWatchCutsTheStreamAndExitsZero) {
  auto process = ServerProcess::Start(FIELDSYNCD_PATH, {"--data_dir=" + data_dir_.string()});
  ASSERT_TRUE(process.ok()) << process.status();
  auto stub = health::Health::NewStub(Channel(process->port()));
  auto context = Context();
  auto watch = stub->Watch(context.get(), health::HealthCheckRequest());
  health::HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), health::HealthCheckResponse::SERVING);

  process->Signal(SIGINT);
  // The stream ends well before its 10 s deadline: the server does not wait
  // for watchers. Any update it still delivers says NOT_SERVING.
  while (watch->Read(&update)) {
    EXPECT_EQ(update.status(), health::HealthCheckResponse::NOT_SERVING);
  }
  EXPECT_NE(watch->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  int status = process->WaitForExit();
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace fieldsync::server
