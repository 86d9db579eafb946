// Issue 9 points 1, 2, 3, 5 (push) and 6 through the real server: the device
// signs the bytes it sends (SignedEvent), the server verifies those bytes,
// parses them and keeps them verbatim; one result per event (Held behind a gap
// or a bad signature); EVENT_ID_REUSED before SEQUENCE_REUSED; and a consumer
// of Subscribe recomputes the hash chain and every signature from the bytes
// it received alone (event.proto SignedEvent, LogEntry; docs/sync.md).
#include <openssl/sha.h>
#include <sodium.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "base/big_endian.h"
#include "gtest/gtest.h"
#include "tests/server/sync_world.h"

namespace fieldsync::testing {
namespace {

using WireContractTest = SyncWorld;

// A serialized message as another library may write it: `parts` concatenated
// (protobuf parsers merge them), so fields arrive in any order.
std::string Concat(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) out += part;
  return out;
}

// The events of the log in offset order, from a Subscribe catch-up.
std::vector<v1::LogEntry> Stream(v1::StreamService::Stub& stub, const std::string& token) {
  auto context = ServiceHarness::Context(token);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::SubscribeRequest request;
  auto reader = stub.Subscribe(context.get(), request);
  std::vector<v1::LogEntry> entries;
  v1::SubscribeResponse response;
  while (reader->Read(&response)) {
    if (response.has_caught_up()) break;
    for (const v1::LogEntry& entry : response.batch().events()) entries.push_back(entry);
  }
  context->TryCancel();
  while (reader->Read(&response)) {
  }
  (void)reader->Finish();
  return entries;
}

TEST_F(WireContractTest,
       AnEventEncodedOutOfOrderWithExplicitDefaultsAndAMapInInsertionOrderVerifies) {
  // A household registration as a naive library writes it: the body before
  // the envelope, device_time with an explicit `nanos: 0`, and the map's
  // entries in insertion order ("phone" before "notes"), none of which the C++
  // library would write.
  v1::Event full = tablet().Register("11111111-1111-4111-8111-0000000000aa", kV1, "N-AA");
  v1::Event envelope = full;
  envelope.clear_household_registered();
  envelope.clear_device_time();
  v1::Event body_z, body_a;
  *body_z.mutable_household_registered() = full.household_registered();
  (*body_z.mutable_household_registered()->mutable_fields())["phone"] = Text("139");
  (*body_a.mutable_household_registered()->mutable_fields())["notes"] = Text("一社");
  v1::Event time;
  *time.mutable_device_time() = full.device_time();
  time.mutable_device_time()->set_nanos(0);
  std::string time_bytes = time.SerializeAsString();
  // device_time (field 5) again, holding only `nanos: 0` written explicitly.
  time_bytes += std::string("\x2a\x02\x10\x00", 4);
  const std::string bytes = Concat({body_z.SerializeAsString(), body_a.SerializeAsString(),
                                    time_bytes, TestEventBytes(envelope)});
  v1::Event reparsed;
  ASSERT_TRUE(reparsed.ParseFromString(bytes));
  ASSERT_NE(sync::DeterministicBytes(reparsed), bytes) << "the test must send non-canonical bytes";

  v1::PushResponse response;
  ASSERT_TRUE(PushSigned(tablet(), {tablet().SignBytes(bytes)}, &response).ok());
  ASSERT_EQ(response.results_size(), 1);
  ASSERT_TRUE(response.results(0).has_accepted()) << response.results(0).ShortDebugString();

  // Stored and served verbatim: the bytes a client verifies are the ones sent.
  std::vector<v1::LogEntry> log = Stream(stream(), hq_token());
  ASSERT_FALSE(log.empty());
  const sync::LoggedEvent stored = Decoded(log.back());
  EXPECT_EQ(log.back().offset(), response.results(0).accepted().offset());
  EXPECT_EQ(stored.event_bytes(), bytes);
  EXPECT_EQ(stored.event().household_registered().fields_size(), 2);
}

TEST_F(WireContractTest, AnUnknownFieldIsMalformedNamingItsNumberAndTheNextEventIsJudged) {
  v1::Event visit = phone().Visit(kH1, kV1);
  // Field 99 (varint 1): what a newer app might add.
  const std::string bytes = TestEventBytes(visit) + std::string("\x98\x06\x01", 3);
  v1::Event next = phone().Visit(kH1, kV1);
  v1::PushResponse response;
  ASSERT_TRUE(PushSigned(phone(), {phone().SignBytes(bytes), SealForPush(next)}, &response).ok());
  ASSERT_EQ(response.results_size(), 2);
  ASSERT_TRUE(response.results(0).has_rejected()) << response.results(0).ShortDebugString();
  EXPECT_EQ(response.results(0).rejected().code(), v1::REJECTION_CODE_MALFORMED);
  EXPECT_TRUE(absl::StrContains(response.results(0).rejected().message(), "field number 99"))
      << response.results(0).rejected().message();
  // Its signature verified: the refusal took its number, the next is judged.
  EXPECT_TRUE(response.results(1).has_accepted()) << response.results(1).ShortDebugString();
}

TEST_F(WireContractTest, InvalidUtf8InsideTheEventBytesIsMalformedAndTheRestOfTheBatchIsAccepted) {
  v1::Event visit = phone().Visit(kH1, kV1);
  // area_code (field 8) again, cut inside a character: not valid UTF-8.
  const std::string bytes = TestEventBytes(visit) + std::string("\x42\x02\xc3\x28", 4);
  v1::Event next = phone().Visit(kH1, kV1);
  v1::Event last = phone().Visit(kH1, kV1);
  v1::PushResponse response;
  ASSERT_TRUE(PushSigned(phone(), {phone().SignBytes(bytes), SealForPush(next), SealForPush(last)},
                         &response)
                  .ok());
  ASSERT_EQ(response.results_size(), 3);
  ASSERT_TRUE(response.results(0).has_rejected()) << response.results(0).ShortDebugString();
  EXPECT_EQ(response.results(0).rejected().code(), v1::REJECTION_CODE_MALFORMED);
  EXPECT_EQ(response.results(0).rejected().field(), "event");
  EXPECT_TRUE(response.results(1).has_accepted()) << response.results(1).ShortDebugString();
  EXPECT_TRUE(response.results(2).has_accepted()) << response.results(2).ShortDebugString();
}

// Protobuf logs an ERROR line for every string that is not UTF-8 it parses; the
// server drops that line (server/auth.h, NewMalformedRequestFactory): a phone
// must not write a line of the server's log per string it sends.
TEST_F(WireContractTest, EventsWithInvalidUtf8WriteNoServerLogLine) {
  std::vector<v1::SignedEvent> batch;
  for (int i = 0; i < 20; ++i) {
    const std::string bytes =
        TestEventBytes(phone().Visit(kH1, kV1)) + std::string("\x42\x02\xc3\x28", 4);
    batch.push_back(phone().SignBytes(bytes));
  }
  v1::PushResponse response;
  ::testing::internal::CaptureStderr();
  grpc::Status status = PushSigned(phone(), batch, &response);
  const std::string logged = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 20);
  for (const v1::PushResult& result : response.results()) {
    EXPECT_EQ(result.rejected().code(), v1::REJECTION_CODE_MALFORMED) << result.ShortDebugString();
  }
  EXPECT_FALSE(absl::StrContains(logged, "invalid UTF-8")) << logged;
}

TEST_F(WireContractTest, ABadSignatureMidBatchIsRefusedAndTheEventsBehindItAreHeldWithTheNumber) {
  v1::Event first = phone().Visit(kH1, kV1);
  v1::Event bad = phone().Visit(kH1, kV1);
  v1::Event third = phone().Visit(kH1, kV1);
  v1::Event fourth = phone().Visit(kH1, kV1);
  v1::SignedEvent tampered = SealForPush(bad);
  tampered.set_signature(std::string(64, 'x'));
  v1::PushResponse response;
  ASSERT_TRUE(PushSigned(phone(),
                         {SealForPush(first), tampered, SealForPush(third), SealForPush(fourth)},
                         &response)
                  .ok());
  ASSERT_EQ(response.results_size(), 4);
  EXPECT_TRUE(response.results(0).has_accepted()) << response.results(0).ShortDebugString();
  ASSERT_TRUE(response.results(1).has_rejected()) << response.results(1).ShortDebugString();
  EXPECT_EQ(response.results(1).rejected().code(), v1::REJECTION_CODE_BAD_SIGNATURE);
  for (int i = 2; i < 4; ++i) {
    ASSERT_TRUE(response.results(i).has_held()) << response.results(i).ShortDebugString();
    EXPECT_EQ(response.results(i).held().expected_device_seq(), bad.device_seq());
  }
  EXPECT_EQ(response.next_expected_seq().at(phone().id()), bad.device_seq());

  // The device resends from the number named: all three go in.
  v1::PushResponse again = MustPush(phone(), {bad, third, fourth});
  EXPECT_EQ(again.next_expected_seq().at(phone().id()), fourth.device_seq() + 1);
}

TEST_F(WireContractTest, APlainGapHoldsEachEventAndARelayIsHeldPerSigner) {
  // The tablet relays the phone's events (a gap: seq 2 never arrived) with
  // its own: the phone's are held, the tablet's are judged.
  MustPush(phone(), {phone().Visit(kH1, kV1)});
  phone().set_next_seq(3);
  v1::Event gap1 = phone().Visit(kH1, kV1);
  v1::Event gap2 = phone().Visit(kH1, kV1);
  v1::Event own = tablet().Visit(kH2, kV1);
  v1::PushResponse response;
  ASSERT_TRUE(Push(tablet(), {gap1, own, gap2}, &response).ok());
  ASSERT_EQ(response.results_size(), 3);
  for (int i : {0, 2}) {
    ASSERT_TRUE(response.results(i).has_held()) << response.results(i).ShortDebugString();
    EXPECT_EQ(response.results(i).held().expected_device_seq(), 2u);
  }
  EXPECT_TRUE(response.results(1).has_accepted()) << response.results(1).ShortDebugString();
  EXPECT_EQ(response.next_expected_seq().at(phone().id()), 2u);
}

TEST_F(WireContractTest, AReusedEventIdWithOtherContentOnAnOldNumberIsEventIdReused) {
  v1::Event first = phone().Visit(kH1, kV1, "第一次");
  MustPush(phone(), {first, phone().Visit(kH1, kV1)});
  // Same id, other content, the old device_seq 1: the id decides
  // (docs/sync.md's order), not the number.
  v1::Event reused = first;
  reused.mutable_visit_recorded()->set_notes("改過");
  phone().Sign(reused);
  v1::PushResponse response;
  ASSERT_TRUE(Push(phone(), {reused}, &response).ok());
  ASSERT_EQ(response.results_size(), 1);
  ASSERT_TRUE(response.results(0).has_rejected()) << response.results(0).ShortDebugString();
  EXPECT_EQ(response.results(0).rejected().code(), v1::REJECTION_CODE_EVENT_ID_REUSED)
      << response.results(0).rejected().message();
}

TEST_F(WireContractTest, ASubscriberRecomputesTheChainAndEverySignatureFromTheBytesAlone) {
  MustPush(phone(), {phone().Visit(kH1, kV1), phone().SetField(kH1, kV1, "phone", Text("1"), 0)});
  MustPush(tablet(), {tablet().Visit(kH2, kV1)});
  std::vector<v1::LogEntry> log = Stream(stream(), hq_token());
  ASSERT_EQ(log.size(), Head()) << "no rejection in this world: every record travels";
  // Keys as the log itself tells them (DeviceEnrolled), nothing else.
  std::map<std::string, std::string> keys;
  std::string prev(32, '\0');
  size_t signatures = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    const v1::LogEntry& entry = log[i];
    ASSERT_EQ(entry.offset(), i + 1);
    EXPECT_EQ(entry.prev_hash(), prev) << "chain broken at " << entry.offset();
    std::string message = entry.prev_hash();
    base::AppendBe64(&message, entry.offset());
    message += entry.record();
    std::string digest(SHA256_DIGEST_LENGTH, '\0');
    SHA256(reinterpret_cast<const unsigned char*>(message.data()), message.size(),
           reinterpret_cast<unsigned char*>(digest.data()));
    EXPECT_EQ(digest, entry.hash()) << "hash of " << entry.offset();
    prev = entry.hash();

    v1::StoredEvent stored;
    ASSERT_TRUE(stored.ParseFromString(entry.record()));
    v1::Event event;
    ASSERT_TRUE(event.ParseFromString(stored.event()));
    if (event.has_device_enrolled()) {
      keys[event.subject().id()] = event.device_enrolled().public_key();
    }
    auto key = keys.find(event.device_id());
    ASSERT_NE(key, keys.end()) << "no enrollment before the event of " << event.device_id();
    ASSERT_EQ(stored.signature().size(), crypto_sign_BYTES);
    EXPECT_EQ(
        crypto_sign_verify_detached(
            reinterpret_cast<const unsigned char*>(stored.signature().data()),
            reinterpret_cast<const unsigned char*>(stored.event().data()), stored.event().size(),
            reinterpret_cast<const unsigned char*>(key->second.data())),
        0)
        << "signature of " << entry.offset();
    ++signatures;
  }
  EXPECT_EQ(signatures, log.size());
}

}  // namespace
}  // namespace fieldsync::testing
