// SIGTERM while a push is in flight, against the real fieldsyncd process: the
// push that was admitted completes with one result per event and every event
// it acknowledged is on disk; calls after the signal are refused; the process
// exits 0.
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "storage/event_store.h"
#include "sync/event_codec.h"
#include "tests/server/server_process.h"
#include "tests/server/service_harness.h"

namespace fieldsync::testing {
namespace {

constexpr char kAreas[] =
    "code,parent,level,name\n"
    "620000000000,,province,甘肃省\n"
    "620100000000,620000000000,city,兰州市\n"
    "620102000000,620100000000,county,城关区\n"
    "620102001000,620102000000,township,甲乡\n"
    "620102001001,620102001000,village,一村\n";
constexpr char kVillage[] = "620102001001";
constexpr int kBatch = 500;

// A client-made UUID (version 4 layout) for household `n`.
std::string HouseholdId(int n) {
  return absl::StrCat("22222222-2222-4222-8222-", absl::StrFormat("%012d", n));
}

TEST(SigtermDuringPushTest, AdmittedPushCompletesLaterCallsAreRefusedAndExitIsZero) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / absl::StrCat("sigterm_push_", getpid());
  std::filesystem::remove_all(dir);
  auto server = ServerProcess::Start(FIELDSYNCD_PATH, {"--data_dir=" + dir.string()});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(server->first_admin_token().has_value());
  const std::string admin = *server->first_admin_token();
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());

  auto admin_stub = v1::AdminService::NewStub(channel);
  v1::ImportAreasRequest areas;
  areas.set_csv(kAreas);
  v1::ImportAreasResponse imported;
  auto context = ServiceHarness::Context(admin);
  ASSERT_TRUE(admin_stub->ImportAreas(context.get(), areas, &imported).ok());
  v1::User user;
  user.set_id("town1");
  user.set_name("town1");
  user.set_role(v1::ROLE_TOWNSHIP_STAFF);
  user.add_scope_area_codes("620102001");
  ASSERT_TRUE(UpsertUser(*channel, admin, user).ok());
  TestDevice tablet([] { return absl::Now(); });
  ASSERT_TRUE(tablet.Enroll(*channel, admin, "town1").ok());

  auto sync = v1::SyncService::NewStub(channel);
  // A first push warms the connection, so the big one goes out at once.
  {
    v1::PushRequest warm;
    *warm.add_events() = SealForPush(tablet.Register(HouseholdId(999999), kVillage, "0000"));
    v1::PushResponse response;
    auto warm_context = ServiceHarness::Context(tablet.token());
    ASSERT_TRUE(sync->Push(warm_context.get(), warm, &response).ok());
  }
  v1::PushRequest request;
  for (int i = 0; i < kBatch; ++i) {
    *request.add_events() =
        SealForPush(tablet.Register(HouseholdId(i), kVillage, absl::StrCat(1000 + i)));
  }

  // The push goes out on the async API. The signal is sent once the server
  // reports the call in flight (its fieldsync_rpcs_in_flight gauge), while it
  // verifies 500 signatures and commits.
  v1::PushResponse pushed;
  grpc::Status push_status;
  absl::Notification push_done;
  auto push_context = ServiceHarness::Context(tablet.token());
  sync->async()->Push(push_context.get(), &request, &pushed, [&](grpc::Status status) {
    push_status = std::move(status);
    push_done.Notify();
  });
  httplib::Client metrics("127.0.0.1", server->metrics_port());
  bool signalled_in_flight = false;
  while (!push_done.HasBeenNotified()) {
    auto page = metrics.Get("/metrics");
    if (page && page->body.find("\nfieldsync_rpcs_in_flight 1") != std::string::npos) {
      server->Signal(SIGTERM);
      signalled_in_flight = true;
      break;
    }
  }
  ASSERT_TRUE(push_done.WaitForNotificationWithTimeout(absl::Seconds(60)));
  // The push finished before the gauge was seen: the test could not catch it
  // in flight (a 500-event push takes ~100 ms here, a scrape ~1 ms).
  ASSERT_TRUE(signalled_in_flight) << "the push completed before it was seen in flight";
  // Admitted before the drain: it completes whole, every event answered.
  ASSERT_TRUE(push_status.ok()) << push_status.error_message();
  ASSERT_EQ(pushed.results_size(), kBatch);

  auto exit = server->WaitForExit();
  ASSERT_TRUE(WIFEXITED(exit)) << "wait status " << exit;
  EXPECT_EQ(WEXITSTATUS(exit), 0);

  // Later calls are refused.
  v1::PushResponse refused;
  auto late_context = ServiceHarness::Context(tablet.token());
  late_context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_EQ(sync->Push(late_context.get(), v1::PushRequest(), &refused).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // Every acknowledged event is on disk at the offset it was given.
  auto store = storage::OpenEventStore((dir).string());
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < kBatch; ++i) {
    const v1::PushResult& result = pushed.results(i);
    ASSERT_TRUE(result.has_accepted()) << result.DebugString();
    // The engine indexes events per signing device.
    auto offset = (*store)->LookupEventId(
        sync::LogEventId(tablet.id(), testsig::EventOf(request.events(i)).event_id()));
    ASSERT_TRUE(offset.ok()) << offset.status();
    ASSERT_TRUE(offset->has_value()) << "acknowledged event " << i << " is missing";
    EXPECT_EQ(**offset, result.accepted().offset());
  }
  EXPECT_TRUE((*store)->VerifyChain(1, (*store)->Head()).ok());
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fieldsync::testing
