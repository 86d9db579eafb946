// The golden vectors (tests/vectors/golden_vectors.json, made by
// tests/vectors/generate_vectors.py from Python's protobuf and cryptography)
// checked against the server's own code: the signatures through the sync
// engine's push verification (a device enrolled with the vectors' key), and
// the hash chain through the real RocksDB store's chain (records appended
// verbatim, hashes read back). If either side changes how it encodes, signs
// or hashes, a client library checked against the vectors would stop working
// with the server: this test says so first.
#include <sodium.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/sync/sync_test_support.h"

#ifndef FIELDSYNC_GOLDEN_VECTORS
#error "FIELDSYNC_GOLDEN_VECTORS must name tests/vectors/golden_vectors.json"
#endif

namespace fieldsync::test {
namespace {

struct GoldenEvent {
  std::string name;
  std::string event;  // The device's encoding of a fieldsync.v1.Event.
  std::string signature;
};

struct GoldenRecord {
  uint64_t offset = 0;
  std::string prev_hash;
  std::string hash;
  std::string record;
};

struct Golden {
  std::string seed;
  std::string public_key;
  std::string device_id;
  std::vector<GoldenEvent> events;
  std::vector<GoldenRecord> log;
};

std::string Hex(const google::protobuf::Value& value) {
  return absl::HexStringToBytes(value.string_value());
}

Golden LoadGolden() {
  std::ifstream in(FIELDSYNC_GOLDEN_VECTORS);
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct root;
  auto parsed = google::protobuf::util::JsonStringToMessage(text.str(), &root);
  EXPECT_TRUE(parsed.ok()) << FIELDSYNC_GOLDEN_VECTORS << ": " << parsed.ToString();
  Golden golden;
  const auto& fields = root.fields();
  golden.seed = Hex(fields.at("key").struct_value().fields().at("seed"));
  golden.public_key = Hex(fields.at("key").struct_value().fields().at("public_key"));
  golden.device_id = fields.at("device_id").string_value();
  for (const auto& value : fields.at("events").list_value().values()) {
    const auto& e = value.struct_value().fields();
    golden.events.push_back({e.at("name").string_value(), Hex(e.at("event")),
                             Hex(e.at("signature"))});
  }
  for (const auto& value : fields.at("log").list_value().values()) {
    const auto& r = value.struct_value().fields();
    golden.log.push_back({static_cast<uint64_t>(r.at("offset").number_value()),
                          Hex(r.at("prev_hash")), Hex(r.at("hash")), Hex(r.at("record"))});
  }
  return golden;
}

TEST(GoldenVectorsTest, PublicKeyIsTheEd25519KeyOfTheSeed) {
  Golden golden = LoadGolden();
  ASSERT_EQ(golden.seed.size(), 32u);
  ASSERT_EQ(sodium_init() >= 0, true);
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk, sk, reinterpret_cast<const unsigned char*>(golden.seed.data()));
  EXPECT_EQ(std::string(reinterpret_cast<char*>(pk), sizeof pk), golden.public_key);
}

TEST(GoldenVectorsTest, ThreeEventsAVisitAFieldPatchAndARegistrationParse) {
  Golden golden = LoadGolden();
  ASSERT_EQ(golden.events.size(), 3u);
  std::vector<v1::Event::BodyCase> bodies;
  for (const GoldenEvent& e : golden.events) {
    v1::Event event;
    ASSERT_TRUE(event.ParseFromString(e.event)) << e.name;
    EXPECT_EQ(event.device_id(), golden.device_id) << e.name;
    EXPECT_EQ(event.device_seq(), bodies.size() + 1) << e.name;
    bodies.push_back(event.body_case());
  }
  EXPECT_EQ(bodies, (std::vector<v1::Event::BodyCase>{v1::Event::kHouseholdRegistered,
                                                      v1::Event::kVisitRecorded,
                                                      v1::Event::kHouseholdFieldsSet}));
}

// The engine as the server runs it, with the vectors' device enrolled: each
// golden event passes the signature check, and the same event with one bit of
// its signature flipped does not.
class GoldenPushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    golden_ = LoadGolden();
    sync::DeviceInfo info;
    info.public_key = golden_.public_key;
    info.user_id = "town-golden";
    info.role = v1::ROLE_TOWNSHIP_STAFF;
    env_.keys().Add(golden_.device_id, info);
    context_.actor = info.user_id;
    context_.role = info.role;
    context_.device_id = golden_.device_id;
    context_.scope = Env::AllScope();
  }

  // The golden event as a device pushes it: its bytes, verbatim, and the
  // signature over them.
  v1::SignedEvent Signed(const GoldenEvent& golden, std::string signature) {
    v1::SignedEvent signed_event;
    signed_event.set_event(golden.event);
    signed_event.set_signature(std::move(signature));
    return signed_event;
  }

  Golden golden_;
  Env env_;
  sync::PushContext context_;
};

TEST_F(GoldenPushTest, GoldenSignaturesVerifyAndAFlippedBitIsBadSignature) {
  ASSERT_EQ(golden_.events.size(), 3u);
  std::string flipped = golden_.events[0].signature;
  flipped[10] = static_cast<char>(flipped[10] ^ 0x01);
  auto bad = env_.engine().Push(context_, {Signed(golden_.events[0], flipped)});
  ASSERT_TRUE(bad.ok()) << bad.status();
  ASSERT_EQ(bad->response.results_size(), 1);
  ASSERT_TRUE(bad->response.results(0).has_rejected());
  EXPECT_EQ(bad->response.results(0).rejected().code(), v1::REJECTION_CODE_BAD_SIGNATURE);

  std::vector<v1::SignedEvent> events;
  for (const GoldenEvent& e : golden_.events) events.push_back(Signed(e, e.signature));
  auto good = env_.engine().Push(context_, events);
  ASSERT_TRUE(good.ok()) << good.status();
  ASSERT_EQ(good->response.results_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const v1::PushResult& result = good->response.results(i);
    EXPECT_TRUE(result.has_accepted() || result.has_conflict_recorded())
        << golden_.events[i].name << ": " << result.ShortDebugString();
  }
}

// The store's hash chain over the golden records: appended verbatim as
// payloads at offsets 1..3, read back with the prev_hash and hash the store
// computed, which must be the vectors'.
TEST(GoldenVectorsTest, LogHashesAreTheStoresChainOverTheRecords) {
  Golden golden = LoadGolden();
  ASSERT_EQ(golden.log.size(), 3u);
  ScopedTempDir dir;
  auto store = storage::OpenEventStore(dir.Join("store"));
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<storage::AppendEntry> entries;
  for (const GoldenRecord& r : golden.log) {
    storage::AppendEntry entry;
    entry.event_id = "golden/" + std::to_string(r.offset);
    entry.payload = r.record;
    entries.push_back(std::move(entry));
  }
  auto appended = (*store)->Append(std::move(entries));
  ASSERT_TRUE(appended.ok()) << appended.status();
  auto records = (*store)->ReadAfter(0, storage::ReadLimits{});
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const storage::LogRecord& got = (*records)[i];
    const GoldenRecord& want = golden.log[i];
    EXPECT_EQ(got.offset, want.offset);
    EXPECT_EQ(absl::BytesToHexString(got.prev_hash), absl::BytesToHexString(want.prev_hash))
        << "offset " << want.offset;
    EXPECT_EQ(absl::BytesToHexString(got.hash), absl::BytesToHexString(want.hash))
        << "offset " << want.offset;
    EXPECT_EQ(got.payload, want.record);
  }
  EXPECT_EQ(golden.log[0].prev_hash, std::string(32, '\0'));
  EXPECT_TRUE((*store)->VerifyChain(1, 3).ok());
}

// Each record carries its event's bytes verbatim as field 1 (length-
// delimited) and its signature as field 11, so a reader verifies the
// signature from the record without re-encoding anything.
TEST(GoldenVectorsTest, EachRecordCarriesItsEventBytesAndSignatureVerbatim) {
  Golden golden = LoadGolden();
  ASSERT_EQ(golden.log.size(), golden.events.size());
  for (size_t i = 0; i < golden.log.size(); ++i) {
    const std::string& record = golden.log[i].record;
    const std::string& event = golden.events[i].event;
    const std::string& signature = golden.events[i].signature;
    ASSERT_LT(event.size(), 16384u);  // A two-byte length prefix below.
    std::string head("\x0a", 1);
    if (event.size() < 128) {
      head.push_back(static_cast<char>(event.size()));
    } else {
      head.push_back(static_cast<char>(0x80 | (event.size() & 0x7f)));
      head.push_back(static_cast<char>(event.size() >> 7));
    }
    EXPECT_EQ(record.substr(0, head.size() + event.size()), head + event) << "record " << i;
    const std::string tail = std::string("\x5a\x40", 2) + signature;
    ASSERT_GE(record.size(), tail.size());
    EXPECT_EQ(record.substr(record.size() - tail.size()), tail) << "record " << i;
    EXPECT_EQ(crypto_sign_verify_detached(
                  reinterpret_cast<const unsigned char*>(signature.data()),
                  reinterpret_cast<const unsigned char*>(event.data()), event.size(),
                  reinterpret_cast<const unsigned char*>(golden.public_key.data())),
              0)
        << "record " << i;
  }
}

}  // namespace
}  // namespace fieldsync::test
