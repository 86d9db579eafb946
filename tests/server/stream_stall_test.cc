// Subscribe consumers that stop reading (issue 12), through the real gRPC
// surface: a stream cut for being too slow whose last write the consumer
// never takes is finished once that write has waited
// limits.stream_idle_timeout_ms, and its call is let go as long again later,
// so a stalled consumer costs nothing for good.
//
// The consumer here uses a channel of its own without BDP probing, so that
// its HTTP/2 windows stay at their initial 64 KiB: what it holds without
// reading is bounded, and a write that does not fit them waits for it.
// Time moves by the injected clock; waits are bounded polls.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr absl::Duration kIdleTimeout = absl::Seconds(30);

class StreamStallTest : public SyncWorld {
 protected:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_limits()->set_max_concurrent_streams(8);
    config.mutable_limits()->set_stream_idle_timeout_ms(absl::ToInt64Milliseconds(kIdleTimeout));
    config.mutable_limits()->set_subscriber_buffer_bytes(1 << 20);
  }

  // A channel whose flow-control windows do not grow past their initial size.
  std::shared_ptr<grpc::Channel> NarrowChannel() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    return grpc::CreateCustomChannel(harness().address(), grpc::InsecureChannelCredentials(),
                                     args);
  }

  // The gauge fieldsync_subscribers_connected: streams the hub holds, ending
  // ones included until gRPC is done with them.
  double Connected() {
    std::istringstream lines(harness().metrics().Render());
    std::string line;
    while (std::getline(lines, line)) {
      if (absl::StartsWith(line, "fieldsync_subscribers_connected ")) {
        return std::stod(line.substr(line.find(' ') + 1));
      }
    }
    ADD_FAILURE() << "no fieldsync_subscribers_connected gauge";
    return -1;
  }

  std::vector<v1::Event> Visits(int n) {
    std::vector<v1::Event> visits;
    for (int i = 0; i < n; ++i) visits.push_back(phone().Visit(kH1, kV1, std::string(7000, 'n')));
    return visits;
  }
};

TEST_F(StreamStallTest, AStreamCutForBeingTooSlowWhoseLastWriteIsNeverTakenIsLetGo) {
  std::shared_ptr<grpc::Channel> channel = NarrowChannel();
  std::unique_ptr<v1::StreamService::Stub> stub = v1::StreamService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  context.AddMetadata("authorization", "Bearer " + hq_token());
  std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader =
      stub->Subscribe(&context, v1::SubscribeRequest());
  v1::SubscribeResponse response;
  bool caught_up = false;
  while (!caught_up && reader->Read(&response)) caught_up = response.has_caught_up();
  ASSERT_TRUE(caught_up);
  ASSERT_EQ(Connected(), 1);

  // Live, and the consumer reads no more: a batch of about 700 KB is
  // written and waits for it (its windows hold 64 KiB)...
  MustPush(phone(), Visits(100));
  // ...(the hub starts that write on its next pass, which nothing here can
  // observe: a short real wait)...
  absl::SleepFor(absl::Milliseconds(300));
  // ...then more than limits.subscriber_buffer_bytes (1 MiB) waits behind it:
  // the stream is cut for being too slow, its status to follow that write.
  MustPush(phone(), Visits(200));

  // The write never completes. Once it has waited the idle timeout the
  // stream finishes, and as long again later the call is cancelled: the
  // hub lets go of it.
  bool let_go = false;
  for (int step = 0; step < 200 && !let_go; ++step) {
    harness().clock().Advance(absl::Seconds(1));
    absl::SleepFor(absl::Milliseconds(20));  // The hub's tick (100 ms, real time).
    let_go = Connected() == 0;
  }
  EXPECT_TRUE(let_go) << "the cut stream is still held after 200 s without its consumer reading";

  context.TryCancel();
  while (reader->Read(&response)) {
  }
  reader->Finish();
}

}  // namespace
}  // namespace fieldsync::testing
