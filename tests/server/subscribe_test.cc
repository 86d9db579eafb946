// StreamService.Subscribe end to end: catch-up from the log (in batches), the
// caught_up marker, live batches as pushes commit, heartbeats by the server's clock,
// filters by kind and scope prefix, the slow-consumer cut and the resume,
// the stream limit, draining. No sleeps: every wait is a blocking Read.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/time.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

class SubscribeTest : public SyncWorld {
 protected:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_limits()->set_subscriber_buffer_bytes(16 << 10);
    config.mutable_limits()->set_max_concurrent_streams(3);
    // These tests open the whole cap as one user (hq1); the per-user share
    // (a quarter of the cap by default) is stream_defects_test's.
    config.mutable_limits()->set_max_streams_per_user(3);
  }

  struct Stream {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
    bool finished = false;

    Stream() = default;
    Stream(Stream&&) = default;

    grpc::Status Finish() {
      finished = true;
      return reader->Finish();
    }

    v1::SubscribeResponse Next() {
      v1::SubscribeResponse response;
      EXPECT_TRUE(reader->Read(&response)) << "the stream ended";
      return response;
    }
    // Reads until caught_up; returns the events before it.
    std::vector<sync::LoggedEvent> CatchUp(uint64_t* head = nullptr) {
      std::vector<sync::LoggedEvent> events;
      v1::SubscribeResponse response;
      while (reader->Read(&response)) {
        if (response.has_caught_up()) {
          if (head != nullptr) *head = response.caught_up().head_offset();
          return events;
        }
        EXPECT_TRUE(response.has_batch()) << response.ShortDebugString();
        for (const sync::LoggedEvent& event : Decoded(response.batch().events()))
          events.push_back(event);
      }
      ADD_FAILURE() << "the stream ended before caught_up";
      return events;
    }
    ~Stream() {
      if (reader == nullptr || finished) return;
      context->TryCancel();
      v1::SubscribeResponse ignored;
      while (reader->Read(&ignored)) {
      }
      reader->Finish();
    }
  };

  Stream Open(const v1::SubscribeRequest& request, const std::string& token = "") {
    Stream stream;
    stream.context = ServiceHarness::Context(token.empty() ? hq_token() : token);
    stream.reader = this->stream().Subscribe(stream.context.get(), request);
    return stream;
  }

  std::vector<sync::LoggedEvent> LoggedEvents() {
    std::vector<sync::LoggedEvent> events;
    for (sync::LoggedEvent& event : harness().ReadLog()) {
      if (!event.is_marker()) events.push_back(std::move(event));
    }
    return events;
  }

  double Gauge(const std::string& name) {
    std::string page = harness().metrics().Render();
    size_t at = page.find("\n" + name + " ");
    if (at == std::string::npos) {
      ADD_FAILURE() << name << " not in " << page;
      return -1;
    }
    return std::stod(page.substr(at + name.size() + 2));
  }
};

TEST_F(SubscribeTest, CatchesUpMarksItThenStreamsLiveEventsWithoutRejectionMarkers) {
  v1::PushResponse refused;
  ASSERT_TRUE(Push(phone(), {phone().Visit(kH3, kV2)}, &refused).ok());  // A marker in the log.
  ASSERT_TRUE(refused.results(0).has_rejected());

  Stream stream = Open({});
  uint64_t head = 0;
  std::vector<sync::LoggedEvent> caught_up = stream.CatchUp(&head);
  std::vector<sync::LoggedEvent> logged = LoggedEvents();
  ASSERT_EQ(caught_up.size(), logged.size());
  for (size_t i = 0; i < logged.size(); ++i) {
    EXPECT_EQ(caught_up[i].offset(), logged[i].offset());
    EXPECT_EQ(caught_up[i].event().event_id(), logged[i].event().event_id());
    EXPECT_EQ(caught_up[i].hash(), logged[i].hash());  // Proofs included.
  }
  EXPECT_EQ(head, Head());
  EXPECT_EQ(Gauge("fieldsync_subscribers_connected"), 1);

  // Live: another rejection (not streamed), then a visit.
  ASSERT_TRUE(Push(phone(), {phone().Visit(kH3, kV2)}, &refused).ok());
  v1::Event visit = phone().Visit(kH1, kV1);
  v1::PushResponse pushed = MustPush(phone(), {visit});
  v1::SubscribeResponse live = stream.Next();
  ASSERT_TRUE(live.has_batch()) << live.ShortDebugString();
  ASSERT_EQ(live.batch().events_size(), 1) << live.ShortDebugString();
  EXPECT_EQ(Decoded(live.batch().events(0)).event().event_id(), visit.event_id());
  EXPECT_EQ(live.batch().events(0).offset(), pushed.results(0).accepted().offset());
  EXPECT_EQ(Decoded(live.batch().events(0)).actor(), "cadre1");
}

TEST_F(SubscribeTest, HeartbeatsComeByTheServersClockWithTheOffsetSentThrough) {
  v1::SubscribeRequest request;
  request.set_heartbeat_interval_ms(1000);
  Stream stream = Open(request);
  stream.CatchUp();
  MustPush(phone(), {phone().Visit(kH1, kV1)});
  ASSERT_TRUE(stream.Next().has_batch());
  harness().clock().Advance(absl::Seconds(2));
  v1::SubscribeResponse beat = stream.Next();
  ASSERT_TRUE(beat.has_heartbeat()) << beat.ShortDebugString();
  EXPECT_EQ(beat.heartbeat().head_offset(), Head());
  EXPECT_EQ(base::FromTimestamp(beat.heartbeat().server_time()), harness().clock().Now());
}

TEST_F(SubscribeTest, FiltersByKindAndScopePrefixInCatchUpAndLive) {
  v1::SubscribeRequest request;
  request.add_kinds(v1::EVENT_KIND_HOUSEHOLD_REGISTERED);
  request.add_kinds(v1::EVENT_KIND_VISIT_RECORDED);
  request.add_scope_prefixes(kTownA1);
  Stream stream = Open(request);
  std::vector<sync::LoggedEvent> caught_up = stream.CatchUp();
  std::set<std::string> registered;
  for (const sync::LoggedEvent& event : caught_up) {
    ASSERT_TRUE(event.event().has_household_registered()) << event.event().ShortDebugString();
    registered.insert(event.event().subject().id());
  }
  EXPECT_EQ(registered, (std::set<std::string>{kH1, kH2, kH3}));  // Not kH4, not the link.

  // Live: a visit in county B, a field patch and a visit in the township.
  MustPush(county_b(), {county_b().Visit(kH4, kV4)});
  MustPush(tablet(), {tablet().SetField(kH2, kV1, "phone", Text("1"), 0)});
  v1::Event visit = tablet().Visit(kH2, kV1);
  MustPush(tablet(), {visit});
  v1::SubscribeResponse live = stream.Next();
  ASSERT_TRUE(live.has_batch());
  ASSERT_EQ(live.batch().events_size(), 1) << live.ShortDebugString();
  EXPECT_EQ(Decoded(live.batch().events(0)).event().event_id(), visit.event_id());

  // From an offset, with a village prefix (a length the scope index serves).
  v1::SubscribeRequest village;
  village.add_scope_prefixes(kV4);
  village.set_from_offset(1);
  Stream second = Open(village);
  std::vector<sync::LoggedEvent> v4 = second.CatchUp();
  ASSERT_EQ(v4.size(), 2u);
  EXPECT_TRUE(v4[0].event().has_household_registered());
  EXPECT_TRUE(v4[1].event().has_visit_recorded());
}

TEST_F(SubscribeTest, ASlowConsumerIsCutAndResumesFromItsLastOffset) {
  Stream stream = Open({});
  uint64_t head = 0;
  stream.CatchUp(&head);
  // The consumer stops reading; 20 visits of 3 KB commit at once, more than
  // its 16 KiB buffer.
  std::vector<v1::Event> visits;
  for (int i = 0; i < 20; ++i) visits.push_back(phone().Visit(kH1, kV1, std::string(3000, 'n')));
  MustPush(phone(), visits);
  v1::SubscribeResponse response;
  int received = 0;
  while (stream.reader->Read(&response)) {
    if (response.has_batch()) received += response.batch().events_size();
  }
  grpc::Status status = stream.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "limits.subscriber_buffer_bytes"))
      << status.error_message();
  EXPECT_LT(received, 20);

  // Resumed from its last offset, it catches up on everything (the catch-up
  // reads the log in bounded steps: no buffer to outgrow).
  v1::SubscribeRequest resume;
  resume.set_from_offset(head);
  Stream again = Open(resume);
  std::vector<sync::LoggedEvent> events = again.CatchUp();
  ASSERT_EQ(events.size(), 20u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].event().event_id(), visits[i].event_id());
  }
}

TEST_F(SubscribeTest, OneStreamOverTheLimitIsRefused) {
  Stream a = Open({});
  Stream b = Open({});
  Stream c = Open({});
  a.CatchUp();
  b.CatchUp();
  c.CatchUp();
  EXPECT_EQ(Gauge("fieldsync_subscribers_connected"), 3);
  Stream d = Open({});
  v1::SubscribeResponse response;
  EXPECT_FALSE(d.reader->Read(&response));
  grpc::Status status = d.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "limits.max_concurrent_streams"))
      << status.error_message();
  std::optional<v1::ErrorDetail> detail = ErrorDetailIn(*d.context);
  ASSERT_TRUE(detail.has_value()) << "no fieldsync-error-bin trailer";
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_RETRY_LATER);
  EXPECT_EQ(detail->limit(), "limits.max_concurrent_streams");
  EXPECT_EQ(detail->limit_value(), 3u);
}

TEST_F(SubscribeTest, DrainingEndsLiveStreamsWithUnavailable) {
  Stream stream = Open({});
  stream.CatchUp();
  harness().state().BeginDrain();
  v1::SubscribeResponse response;
  EXPECT_FALSE(stream.reader->Read(&response));
  grpc::Status status = stream.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(harness().state().WaitIdle(absl::Now() + absl::Seconds(10)));
}

}  // namespace
}  // namespace fieldsync::testing
