// Regression tests of issue 7 for StreamService.Subscribe and the log's
// proofs, through the real gRPC surface:
//   - revoking a device, or disabling a user, ends the open Subscribe of
//     that device / user at once with UNAUTHENTICATED saying why (item 11);
//   - one user holds at most limits.max_streams_per_user streams, so another
//     user (the admin) still gets one; a consumer that stopped reading is
//     cut with a status naming the offset to resume from (item 12);
//   - every record's StoredEvent.hash recomputes, byte-exact, from the
//     formula event.proto documents, and the chain holds (item 14a).
// Waits are blocking Reads bounded by a deadline; time moves by the
// injected clock.
#include <openssl/sha.h>

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/big_endian.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr absl::Duration kIdleTimeout = absl::Seconds(30);

class StreamDefectsTest : public SyncWorld {
 protected:
  void Configure(v1::ServerConfig& config) override {
    // max_streams_per_user left 0: a quarter of the cap, so 2.
    config.mutable_limits()->set_max_concurrent_streams(8);
    config.mutable_limits()->set_stream_idle_timeout_ms(absl::ToInt64Milliseconds(kIdleTimeout));
  }

  struct Stream {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
    bool finished = false;

    Stream() = default;
    Stream(Stream&&) = default;

    // Reads until caught_up; returns the events before it.
    std::vector<sync::LoggedEvent> CatchUp() {
      std::vector<sync::LoggedEvent> events;
      v1::SubscribeResponse response;
      while (reader->Read(&response)) {
        if (response.has_caught_up()) return events;
        for (const sync::LoggedEvent& event : Decoded(response.batch().events()))
          events.push_back(event);
      }
      ADD_FAILURE() << "the stream ended before caught_up";
      return events;
    }
    // Reads to the end of the stream; returns its status and the events.
    grpc::Status ReadToEnd(std::vector<sync::LoggedEvent>* events = nullptr) {
      v1::SubscribeResponse response;
      while (reader->Read(&response)) {
        if (events == nullptr) continue;
        for (const sync::LoggedEvent& event : Decoded(response.batch().events()))
          events->push_back(event);
      }
      finished = true;
      return reader->Finish();
    }
    ~Stream() {
      if (reader == nullptr || finished) return;
      context->TryCancel();
      ReadToEnd();
    }
  };

  // A stream whose reads give up after `deadline` (the bound under test),
  // on the world's channel or on `stub`'s.
  Stream Open(const std::string& token, v1::SubscribeRequest request = {},
              absl::Duration deadline = absl::Seconds(30),
              v1::StreamService::Stub* stub = nullptr) {
    Stream stream;
    stream.context = std::make_unique<grpc::ClientContext>();
    stream.context->set_deadline(std::chrono::system_clock::now() +
                                 absl::ToChronoMilliseconds(deadline));
    stream.context->AddMetadata("authorization", "Bearer " + token);
    stream.reader = (stub != nullptr ? stub : &this->stream())->Subscribe(stream.context.get(),
                                                                          request);
    return stream;
  }

  // A stub on a channel of its own whose HTTP/2 windows do not grow (no BDP
  // probing): a consumer on it that stops reading holds at most its 64 KiB
  // windows beyond what it read, so the server's next write waits for it.
  // (On a default channel the windows grow with the client's bandwidth-delay
  // estimate, by megabytes under load, and may take a whole catch-up
  // without the application reading: from the server, a consumer that read
  // everything.)
  std::unique_ptr<v1::StreamService::Stub> NarrowStub() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    return v1::StreamService::NewStub(grpc::CreateCustomChannel(
        harness().address(), grpc::InsecureChannelCredentials(), args));
  }

  grpc::Status RevokeDevice(const std::string& device_id, const std::string& reason) {
    v1::RevokeDeviceRequest request;
    request.set_device_id(device_id);
    request.set_reason(reason);
    v1::RevokeDeviceResponse response;
    auto context = ServiceHarness::Context(admin_token());
    return admin().RevokeDevice(context.get(), request, &response);
  }

  absl::StatusOr<v1::User> SetHq(const std::string& id, bool disabled) {
    v1::User user;
    user.set_id(id);
    user.set_name(absl::StrCat("HQ ", id));
    user.set_role(v1::ROLE_HQ_ANALYST);
    user.set_disabled(disabled);
    return UpsertUser(*harness().channel(), admin_token(), user);
  }
};

// --- Item 11: open streams end with the access that opened them -------------------------

TEST_F(StreamDefectsTest, RevokingADeviceEndsItsOpenSubscribeAtOnce) {
  absl::StatusOr<EnrolledDevice> device = EnrollDevice(*harness().channel(), admin_token(), "hq1");
  ASSERT_TRUE(device.ok()) << device.status();
  Stream revoked = Open(device->token, {}, absl::Seconds(5));
  Stream other = Open(hq_token(), {}, absl::Seconds(5));  // Same user, another device.
  revoked.CatchUp();
  other.CatchUp();

  const absl::Time start = absl::Now();
  ASSERT_TRUE(RevokeDevice(device->device_id, "lost on the bus").ok());
  grpc::Status status = revoked.ReadToEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(),
                                absl::StrCat("device ", device->device_id, " was revoked")))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "lost on the bus"))
      << status.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));

  // The user's other device streams on: it sees the revocation itself.
  v1::SubscribeResponse next;
  ASSERT_TRUE(other.reader->Read(&next));
  ASSERT_TRUE(next.has_batch()) << next.ShortDebugString();
  EXPECT_TRUE(Decoded(next.batch().events(0)).event().has_device_revoked());
}

TEST_F(StreamDefectsTest, DisablingAUserEndsEveryOpenSubscribeOfThatUserAtOnce) {
  ASSERT_TRUE(SetHq("hq2", false).ok());
  absl::StatusOr<EnrolledDevice> a = EnrollDevice(*harness().channel(), admin_token(), "hq2");
  absl::StatusOr<EnrolledDevice> b = EnrollDevice(*harness().channel(), admin_token(), "hq2");
  ASSERT_TRUE(a.ok() && b.ok());
  Stream first = Open(a->token, {}, absl::Seconds(5));
  Stream second = Open(b->token, {}, absl::Seconds(5));
  Stream bystander = Open(hq_token(), {}, absl::Seconds(5));
  first.CatchUp();
  second.CatchUp();
  bystander.CatchUp();

  const absl::Time start = absl::Now();
  ASSERT_TRUE(SetHq("hq2", true).ok());
  for (Stream* stream : {&first, &second}) {
    grpc::Status status = stream->ReadToEnd();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "user hq2 was disabled"))
        << status.error_message();
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  v1::SubscribeResponse next;
  ASSERT_TRUE(bystander.reader->Read(&next));  // hq1 is untouched.
  EXPECT_TRUE(next.has_batch() && Decoded(next.batch().events(0)).event().has_user_upserted())
      << next.ShortDebugString();
}

// --- Item 12: a share of the cap per user, and idle consumers reaped ---------------------

TEST_F(StreamDefectsTest, OneUserGetsItsShareOfStreamsAndTheAdminStillGetsOne) {
  Stream a = Open(hq_token());
  Stream b = Open(hq_token());
  a.CatchUp();
  b.CatchUp();
  Stream over = Open(hq_token());
  grpc::Status status = over.ReadToEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "limits.max_streams_per_user=2"))
      << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "user hq1")) << status.error_message();
  std::optional<v1::ErrorDetail> detail = ErrorDetailIn(*over.context);
  ASSERT_TRUE(detail.has_value()) << "no fieldsync-error-bin trailer";
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_RETRY_LATER);
  EXPECT_EQ(detail->limit(), "limits.max_streams_per_user");
  EXPECT_EQ(detail->limit_value(), 2u);

  Stream admin_stream = Open(admin_token());
  admin_stream.CatchUp();  // Admitted: the cap (8) is not the user's to take.
}

// Was DISABLED in session 3 (failing about 1 run in 5, and 6 in 12 on this
// loaded machine): the consumer's gRPC library grows its HTTP/2 windows by
// its bandwidth-delay estimate and at times took the whole 7 MB catch-up
// without the test reading (the stream then live with nothing to send:
// "never cut"), or all of it but the caught_up marker ("cut" past the
// head). The stalled consumer now reads through a channel whose windows
// stay at 64 KiB (NarrowStub), so the server's second batch waits for it.
TEST_F(StreamDefectsTest, AConsumerThatStopsReadingIsCutWithTheOffsetToResumeFrom) {
  // More log than the first batch (1 MiB) and the consumer's 64 KiB
  // windows together: the catch-up cannot reach the head.
  for (int push = 0; push < 2; ++push) {
    std::vector<v1::Event> visits;
    for (int i = 0; i < 200; ++i) {
      visits.push_back(phone().Visit(kH1, kV1, std::string(7000, 'n')));
    }
    MustPush(phone(), visits);
  }
  // Reads its first message (so it holds its slot), then nothing until cut.
  std::unique_ptr<v1::StreamService::Stub> narrow = NarrowStub();
  Stream stalled = Open(hq_token(), {}, absl::Seconds(30), narrow.get());
  std::vector<sync::LoggedEvent> received;
  v1::SubscribeResponse first_of_stalled;
  ASSERT_TRUE(stalled.reader->Read(&first_of_stalled));
  ASSERT_TRUE(first_of_stalled.has_batch()) << first_of_stalled.ShortDebugString();
  for (const sync::LoggedEvent& event : Decoded(first_of_stalled.batch().events()))
    received.push_back(event);
  v1::SubscribeRequest quiet;
  quiet.add_scope_prefixes(kV4);
  Stream reading = Open(hq_token(), quiet);  // hq1's second (last) slot.
  reading.CatchUp();

  // Time passes; hq1's next stream is admitted once the stalled one, whose
  // write has waited longer than the idle timeout, is cut.
  bool admitted = false;
  for (int attempt = 0; attempt < 300 && !admitted; ++attempt) {
    // Time moves once (and once more if the stalled write had not begun
    // yet); a second step right after the cut would cancel the cut call.
    if (attempt == 0 || attempt == 150) harness().clock().Advance(kIdleTimeout + absl::Seconds(1));
    if (attempt > 0) absl::SleepFor(absl::Milliseconds(5));  // The hub's tick.
    Stream next = Open(hq_token(), quiet);
    v1::SubscribeResponse first;
    if (next.reader->Read(&first)) {
      admitted = true;
    } else {
      grpc::Status refused = next.ReadToEnd();
      ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << refused.error_message();
    }
  }
  ASSERT_TRUE(admitted) << "the stalled stream was never cut";

  grpc::Status status = stalled.ReadToEnd(&received);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "limits.stream_idle_timeout_ms=30000"))
      << status.error_message();
  std::optional<v1::ErrorDetail> detail = ErrorDetailIn(*stalled.context);
  ASSERT_TRUE(detail.has_value()) << "no fieldsync-error-bin trailer";
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_RETRY_LATER);
  EXPECT_EQ(detail->limit(), "limits.stream_idle_timeout_ms");
  EXPECT_EQ(detail->limit_value(), 30000u);
  ASSERT_FALSE(received.empty());
  EXPECT_LT(received.back().offset(), Head());  // Cut in the middle of its catch-up.
  EXPECT_TRUE(absl::StrContains(status.error_message(), "from_offset")) << status.error_message();
  // The offset named is one the consumer has.
  const std::string marker = "sent everything through ";
  size_t at = status.error_message().find(marker);
  ASSERT_NE(at, std::string::npos) << status.error_message();
  uint64_t through = std::stoull(status.error_message().substr(at + marker.size()));
  EXPECT_LE(through, received.back().offset());
  // (0 when not even its first write was taken: offset 1 was in flight.)

  // Resumed from its last event, it gets the rest, gapless.
  v1::SubscribeRequest resume;
  resume.set_from_offset(received.back().offset());
  Stream again = Open(admin_token(), resume);
  std::vector<sync::LoggedEvent> rest = again.CatchUp();
  ASSERT_FALSE(rest.empty());
  EXPECT_GT(rest.front().offset(), received.back().offset());
  EXPECT_EQ(rest.back().offset(), Head());
}

// --- Item 14a: the hash chain, from the documented formula alone -------------------------

// What event.proto documents for LogEntry.hash: SHA-256 over prev_hash
// (32 bytes), the offset as 8 bytes big-endian, and the record bytes as
// received (never a re-encoding).
std::string DocumentedHash(const sync::LoggedEvent& received) {
  const std::string& bytes = received.record();
  std::string message = received.prev_hash();
  base::AppendBe64(&message, received.offset());
  message += bytes;
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
         reinterpret_cast<unsigned char*>(digest.data()));
  return digest;
}

TEST_F(StreamDefectsTest, EveryStreamedRecordsHashRecomputesFromTheDocumentedFormula) {
  // Over 200 records of every sort the world makes (admin events, enrolments,
  // links, registrations, visits with patches); no rejection, so the
  // stream holds every record and the chain can be walked whole.
  for (int push = 0; push < 2; ++push) {
    std::vector<v1::Event> events;
    for (int i = 0; i < 100; ++i) {
      events.push_back(i % 2 == 0 ? phone().Visit(kH1, kV1, absl::StrCat("走訪 ", push, "-", i))
                                  : tablet().Visit(kH2, kV1, absl::StrCat("入户 ", i)));
    }
    std::vector<v1::Event> by_phone, by_tablet;
    for (v1::Event& event : events) {
      (event.device_id() == phone().id() ? by_phone : by_tablet).push_back(std::move(event));
    }
    MustPush(phone(), by_phone);
    MustPush(tablet(), by_tablet);
  }
  MustPush(tablet(), {tablet().SetField(kH2, kV1, "phone", Text("13900000000"), 0)});

  Stream stream = Open(admin_token());
  std::vector<sync::LoggedEvent> records = stream.CatchUp();
  ASSERT_GE(records.size(), 200u);
  ASSERT_EQ(records.size(), Head()) << "a record is missing from the stream";
  size_t matched = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const sync::LoggedEvent& record = records[i];
    ASSERT_EQ(record.offset(), i + 1);
    ASSERT_EQ(record.hash().size(), 32u);
    const std::string expected_prev = i == 0 ? std::string(32, '\0') : records[i - 1].hash();
    EXPECT_EQ(record.prev_hash(), expected_prev) << "chain broken at offset " << record.offset();
    if (DocumentedHash(record) == record.hash()) ++matched;
  }
  EXPECT_EQ(matched, records.size()) << "of " << records.size() << " records";
}

}  // namespace
}  // namespace fieldsync::testing
