// StreamService.Subscribe at speed (issue 12), through the real gRPC surface:
//   - catch-up comes in batches within the requested bounds (count, bytes);
//   - live batches are woken by the commit: the injected clock never moves;
//   - a live consumer slower than the log is cut with RESOURCE_EXHAUSTED and
//     the offset to resume from (message and trailer); resuming from it loses
//     nothing and repeats nothing;
//   - a filter that matches nothing over a log longer than one read step ends
//     its catch-up, and the stream goes live;
//   - commits during catch-up are neither lost nor repeated at the switch to
//     live, nor by streams sharing catch-up batches;
//   - the stream carries the stored events: the consumer recomputes every
//     hash and walks the chain.
// Waits are blocking Reads bounded by a deadline; no sleeps.
#include <openssl/sha.h>

#include <chrono>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "sync/event_codec.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

constexpr size_t kBufferBytes = 16 << 10;

class StreamSpeedTest : public SyncWorld {
 protected:
  void Configure(v1::ServerConfig& config) override {
    config.mutable_limits()->set_subscriber_buffer_bytes(kBufferBytes);
    config.mutable_limits()->set_max_concurrent_streams(8);
    config.mutable_limits()->set_max_streams_per_user(8);
  }

  struct Stream {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<v1::SubscribeResponse>> reader;
    bool finished = false;
    std::vector<v1::EventBatch> batches;

    Stream() = default;
    Stream(Stream&&) = default;

    // Reads until caught_up; returns the events before it.
    std::vector<sync::LoggedEvent> CatchUp(uint64_t* head = nullptr) {
      std::vector<sync::LoggedEvent> events;
      v1::SubscribeResponse response;
      while (reader->Read(&response)) {
        if (response.has_caught_up()) {
          if (head != nullptr) *head = response.caught_up().head_offset();
          return events;
        }
        if (!response.has_batch()) continue;  // A heartbeat.
        batches.push_back(response.batch());
        for (const sync::LoggedEvent& event : Decoded(response.batch().events()))
          events.push_back(event);
      }
      ADD_FAILURE() << "the stream ended before caught_up";
      return events;
    }
    // The events of the next batch (heartbeats skipped).
    std::vector<sync::LoggedEvent> NextBatch() {
      v1::SubscribeResponse response;
      while (reader->Read(&response)) {
        if (!response.has_batch()) continue;
        batches.push_back(response.batch());
        return Decoded(response.batch().events());
      }
      ADD_FAILURE() << "the stream ended";
      return {};
    }
    grpc::Status ReadToEnd(std::vector<sync::LoggedEvent>* events) {
      v1::SubscribeResponse response;
      while (reader->Read(&response)) {
        for (const sync::LoggedEvent& event : Decoded(response.batch().events()))
          events->push_back(event);
      }
      finished = true;
      return reader->Finish();
    }
    ~Stream() {
      if (reader == nullptr || finished) return;
      context->TryCancel();
      std::vector<sync::LoggedEvent> ignored;
      ReadToEnd(&ignored);
    }
  };

  Stream Open(const v1::SubscribeRequest& request) {
    Stream stream;
    stream.context = std::make_unique<grpc::ClientContext>();
    stream.context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stream.context->AddMetadata("authorization", "Bearer " + hq_token());
    stream.reader = this->stream().Subscribe(stream.context.get(), request);
    return stream;
  }

  std::vector<sync::LoggedEvent> LoggedEvents(uint64_t after = 0) {
    std::vector<sync::LoggedEvent> events;
    for (sync::LoggedEvent& event : harness().ReadLog()) {
      if (!event.is_marker() && event.offset() > after) {
        events.push_back(std::move(event));
      }
    }
    return events;
  }

  // Appends `count` visits straight to the store (no engine: the stream
  // only reads the log), `per_append` per Append, for logs longer than
  // pushes make quickly.
  void AppendVisits(size_t count, size_t per_append = 5000) {
    for (size_t done = 0; done < count;) {
      std::vector<storage::AppendEntry> entries;
      for (; entries.size() < per_append && done < count; ++done) {
        v1::StoredEvent stored;
        v1::Event event;
        event.set_event_id(absl::StrCat("direct-", appended_++));
        event.set_device_id("direct-device");
        event.set_area_code(kV1);
        event.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
        event.mutable_subject()->set_id(kH1);
        event.mutable_visit_recorded()->set_notes("走訪 direct");
        stored.set_event(event.SerializeAsString());
        stored.set_actor("cadre1");
        entries.push_back(sync::ToAppendEntry(stored, event));
      }
      ASSERT_TRUE(harness().store().Append(std::move(entries)).ok());
    }
  }

  size_t appended_ = 0;
};

// For tests whose streams may be live while large appends commit: a buffer
// none of their appends outgrows, so that no stream is cut as slow.
class StreamSpeedRoomyTest : public StreamSpeedTest {
 protected:
  void Configure(v1::ServerConfig& config) override {
    StreamSpeedTest::Configure(config);
    config.mutable_limits()->set_subscriber_buffer_bytes(64 << 20);
  }
};

std::vector<uint64_t> Offsets(const std::vector<sync::LoggedEvent>& events) {
  std::vector<uint64_t> offsets;
  for (const sync::LoggedEvent& event : events) offsets.push_back(event.offset());
  return offsets;
}

TEST_F(StreamSpeedTest, CatchUpComesInBatchesWithinTheRequestedBounds) {
  for (int push = 0; push < 3; ++push) {
    std::vector<v1::Event> visits;
    for (int i = 0; i < 20; ++i) visits.push_back(phone().Visit(kH1, kV1, std::string(300, 'n')));
    MustPush(phone(), visits);
  }
  const std::vector<sync::LoggedEvent> logged = LoggedEvents();
  ASSERT_GE(logged.size(), 60u);

  // Default bounds: the whole (small) log in one message.
  Stream whole = Open({});
  EXPECT_EQ(Offsets(whole.CatchUp()), Offsets(logged));
  EXPECT_EQ(whole.batches.size(), 1u);

  // At most 7 events a batch.
  v1::SubscribeRequest by_count;
  by_count.set_max_batch_events(7);
  Stream counted = Open(by_count);
  EXPECT_EQ(Offsets(counted.CatchUp()), Offsets(logged));
  ASSERT_GE(counted.batches.size(), logged.size() / 7);
  for (const v1::EventBatch& batch : counted.batches) {
    ASSERT_GE(batch.events_size(), 1);
    EXPECT_LE(batch.events_size(), 7);
    EXPECT_GE(batch.through_offset(), batch.events(batch.events_size() - 1).offset());
  }

  // At most 1 KiB of events a batch (the smallest bound): a visit with its
  // 300-byte notes is ~400 bytes, so two a batch.
  v1::SubscribeRequest by_bytes;
  by_bytes.set_max_batch_bytes(1);  // Clamped to 1 KiB.
  Stream sized = Open(by_bytes);
  EXPECT_EQ(Offsets(sized.CatchUp()), Offsets(logged));
  size_t multi = 0;
  for (const v1::EventBatch& batch : sized.batches) {
    size_t bytes = 0;
    for (const v1::LogEntry& event : batch.events()) bytes += event.ByteSizeLong();
    if (batch.events_size() > 1) {
      ++multi;
      EXPECT_LE(bytes, 1024u) << batch.events_size() << " events";
    }
  }
  EXPECT_GT(multi, 0u) << "no batch held two events";
}

TEST_F(StreamSpeedTest, LiveBatchesAreWokenByTheCommitWithTheClockStandingStill) {
  // The injected clock never moves in this test: a stream that polled by
  // the server's clock would never deliver.
  const absl::Time frozen = harness().clock().Now();
  Stream stream = Open({});
  stream.CatchUp();
  for (int round = 0; round < 5; ++round) {
    v1::Event visit = phone().Visit(kH1, kV1, absl::StrCat("live ", round));
    v1::PushResponse pushed = MustPush(phone(), {visit});
    std::vector<sync::LoggedEvent> live = stream.NextBatch();
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live[0].event().event_id(), visit.event_id());
    EXPECT_EQ(live[0].offset(), pushed.results(0).accepted().offset());
  }
  EXPECT_EQ(harness().clock().Now(), frozen);
}

TEST_F(StreamSpeedTest, ASlowLiveConsumerIsCutWithTheResumeOffsetAndResumingLosesAndRepeatsNothing) {
  Stream stream = Open({});
  uint64_t head = 0;
  stream.CatchUp(&head);
  // Some live events reach the consumer, then it stops reading while more
  // than its 16 KiB buffer commits.
  for (int i = 0; i < 3; ++i) MustPush(phone(), {phone().Visit(kH1, kV1, "small")});
  std::vector<sync::LoggedEvent> received;
  for (int i = 0; i < 3 && received.size() < 3; ++i) {
    for (sync::LoggedEvent& event : stream.NextBatch()) received.push_back(std::move(event));
  }
  ASSERT_EQ(received.size(), 3u);
  for (int push = 0; push < 3; ++push) {
    std::vector<v1::Event> visits;
    for (int i = 0; i < 10; ++i) visits.push_back(phone().Visit(kH1, kV1, std::string(3000, 'n')));
    MustPush(phone(), visits);
  }
  grpc::Status status = stream.ReadToEnd(&received);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "limits.subscriber_buffer_bytes"))
      << status.error_message();
  std::optional<v1::ErrorDetail> detail = ErrorDetailIn(*stream.context);
  ASSERT_TRUE(detail.has_value()) << "no fieldsync-error-bin trailer";
  EXPECT_EQ(detail->action(), v1::ErrorDetail::ACTION_RETRY_LATER);
  EXPECT_EQ(detail->limit(), "limits.subscriber_buffer_bytes");
  const auto& trailers = stream.context->GetServerTrailingMetadata();
  auto trailer = trailers.find("fieldsync-resume-offset");
  ASSERT_NE(trailer, trailers.end()) << "no resume trailer";
  const uint64_t resume = std::stoull(std::string(trailer->second.data(), trailer->second.size()));
  EXPECT_TRUE(absl::StrContains(status.error_message(), absl::StrCat("from_offset = ", resume)))
      << status.error_message();
  EXPECT_LT(resume, Head());
  // Everything received is at most the offset named, and everything up to
  // it was received.
  for (const sync::LoggedEvent& event : received) EXPECT_LE(event.offset(), resume);

  v1::SubscribeRequest again;
  again.set_from_offset(resume);
  Stream resumed = Open(again);
  for (sync::LoggedEvent& event : resumed.CatchUp()) received.push_back(std::move(event));
  EXPECT_EQ(Offsets(received), Offsets(LoggedEvents(head)));  // No gap, no repeat.
}

TEST_F(StreamSpeedTest, AFilterThatMatchesNothingEndsItsCatchUpAndGoesLive) {
  AppendVisits(40000);  // Longer than two read steps (16384 records each).
  v1::SubscribeRequest request;
  request.add_kinds(v1::EVENT_KIND_INSPECTION_RECORDED);  // None in the log.
  Stream nothing = Open(request);
  Stream everything = Open({});  // Served meanwhile.
  uint64_t head = 0;
  EXPECT_TRUE(nothing.CatchUp(&head).empty());
  EXPECT_EQ(head, Head());
  EXPECT_EQ(nothing.batches.size(), 0u);
  EXPECT_EQ(everything.CatchUp().size(), LoggedEvents().size());

  // A stream of one kind from the head: only that kind arrives live.
  v1::SubscribeRequest visits;
  visits.add_kinds(v1::EVENT_KIND_VISIT_RECORDED);
  visits.set_from_offset(Head());
  Stream live = Open(visits);
  live.CatchUp();
  v1::Event visit = phone().Visit(kH1, kV1);
  MustPush(phone(), {visit});
  std::vector<sync::LoggedEvent> batch = live.NextBatch();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].event().event_id(), visit.event_id());
}

TEST_F(StreamSpeedRoomyTest, CommitsDuringCatchUpAreNeitherLostNorRepeatedAtTheSwitchToLive) {
  AppendVisits(30000);
  v1::SubscribeRequest request;
  request.set_max_batch_events(500);
  Stream stream = Open(request);
  // Pushes commit while the stream reads its catch-up.
  std::vector<sync::LoggedEvent> seen;
  for (int round = 0; round < 10; ++round) {
    MustPush(phone(), {phone().Visit(kH1, kV1, absl::StrCat("during ", round))});
    AppendVisits(700, 700);
  }
  uint64_t head = 0;
  seen = stream.CatchUp(&head);
  const uint64_t final_head = Head();
  // Whatever the catch-up did not take comes live.
  while (seen.empty() || seen.back().offset() < final_head) {
    std::vector<sync::LoggedEvent> batch = stream.NextBatch();
    if (batch.empty()) break;  // The stream ended (NextBatch failed the test).
    for (sync::LoggedEvent& event : batch) seen.push_back(std::move(event));
  }
  EXPECT_EQ(Offsets(seen), Offsets(LoggedEvents()));
}

TEST_F(StreamSpeedRoomyTest, UnfilteredStreamsReadingTogetherEachGetTheWholeLogOnce) {
  // Streams with the same bounds share catch-up batches; one made before a
  // commit (shorter) must not hide what the commit added.
  AppendVisits(20000);
  v1::SubscribeRequest request;
  request.set_max_batch_events(1000);
  Stream first = Open(request);
  Stream second = Open(request);
  AppendVisits(5000, 1000);
  Stream third = Open(request);
  const uint64_t head = Head();
  for (Stream* stream : {&first, &second, &third}) {
    std::vector<sync::LoggedEvent> seen = stream->CatchUp();
    while (seen.empty() || seen.back().offset() < head) {
      std::vector<sync::LoggedEvent> batch = stream->NextBatch();
      if (batch.empty()) break;  // The stream ended (NextBatch failed the test).
      for (sync::LoggedEvent& event : batch) seen.push_back(std::move(event));
    }
    EXPECT_EQ(Offsets(seen), Offsets(LoggedEvents()));
  }
}

// What event.proto documents for LogEntry.hash (see stream_defects_test).
std::string DocumentedHash(const sync::LoggedEvent& received) {
  const std::string& bytes = received.record();
  std::string message = received.prev_hash();
  for (int shift = 56; shift >= 0; shift -= 8) {
    message.push_back(static_cast<char>((received.offset() >> shift) & 0xff));
  }
  message += bytes;
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
         reinterpret_cast<unsigned char*>(digest.data()));
  return digest;
}

TEST_F(StreamSpeedTest, AConsumerRecomputesTheHashChainFromTheBatchedStream) {
  std::vector<v1::Event> visits;
  for (int i = 0; i < 150; ++i) visits.push_back(phone().Visit(kH1, kV1, absl::StrCat("鏈 ", i)));
  MustPush(phone(), visits);
  AppendVisits(500, 250);
  v1::SubscribeRequest request;
  request.set_max_batch_events(16);
  Stream stream = Open(request);
  std::vector<sync::LoggedEvent> records = stream.CatchUp();
  ASSERT_EQ(records.size(), Head()) << "a record is missing (no rejection in this log)";
  ASSERT_GT(stream.batches.size(), 40u);
  for (size_t i = 0; i < records.size(); ++i) {
    const sync::LoggedEvent& record = records[i];
    ASSERT_EQ(record.offset(), i + 1);
    const std::string expected_prev = i == 0 ? std::string(32, '\0') : records[i - 1].hash();
    ASSERT_EQ(record.prev_hash(), expected_prev) << "chain broken at offset " << record.offset();
    ASSERT_EQ(DocumentedHash(record), record.hash()) << "offset " << record.offset();
  }
  // And the live tail carries the same proofs.
  MustPush(phone(), {phone().Visit(kH1, kV1, "tail")});
  std::vector<sync::LoggedEvent> live = stream.NextBatch();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].prev_hash(), records.back().hash());
  EXPECT_EQ(DocumentedHash(live[0]), live[0].hash());
}

}  // namespace
}  // namespace fieldsync::testing
