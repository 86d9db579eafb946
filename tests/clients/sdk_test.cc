// The client SDK's pieces that need no server: relay bundles, back-off,
// the config file parser of fieldctl.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "clients/fieldctl/args.h"
#include "clients/sdk/bundle.h"
#include "clients/sdk/event_signing.h"
#include "clients/sdk/retry.h"
#include "gtest/gtest.h"

namespace fieldsync::client {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / (name + std::to_string(::getpid())))
      .string();
}

TEST(BundleTest, RoundTripKeepsEventsByteForByte) {
  v1::Event event;
  event.set_event_id(NewUuid());
  event.set_device_id("D1");
  event.set_device_seq(7);
  event.mutable_visit_recorded()->set_notes("走訪");
  v1::SignedEvent signed_event;
  signed_event.set_event(event.SerializeAsString());
  signed_event.set_signature(std::string(64, 's'));
  const std::string path = TempPath("bundle_rt");
  ASSERT_TRUE(WriteBundle(path, {signed_event, signed_event}).ok());
  auto read = ReadBundle(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[1].SerializeAsString(), signed_event.SerializeAsString());
}

TEST(BundleTest, EveryTruncationIsDataLossNeverAPartialImport) {
  v1::Event event;
  event.set_event_id(NewUuid());
  event.mutable_visit_recorded()->set_notes(std::string(200, 'x'));
  v1::SignedEvent signed_event;
  signed_event.set_event(event.SerializeAsString());
  const std::string path = TempPath("bundle_cut");
  ASSERT_TRUE(WriteBundle(path, {signed_event, signed_event, signed_event}).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << bytes.substr(0, cut);
    }
    auto read = ReadBundle(path);
    EXPECT_TRUE(absl::IsDataLoss(read.status())) << "cut at " << cut << ": " << read.status();
  }
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x20;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << flipped;
  }
  EXPECT_TRUE(absl::IsDataLoss(ReadBundle(path).status()));
}

TEST(SigningTest, TheSignatureCoversExactlyTheBytesEncodedOnce) {
  auto key = MakeDeviceKey();
  ASSERT_TRUE(key.ok());
  v1::Event event;
  event.set_event_id(NewUuid());
  event.set_device_seq(1);
  event.mutable_visit_recorded()->set_notes("a");
  absl::StatusOr<v1::SignedEvent> signed_event = SignEvent(key->secret_key, event);
  ASSERT_TRUE(signed_event.ok()) << signed_event.status();
  EXPECT_EQ(signed_event->signature().size(), 64u);
  EXPECT_EQ(signed_event->event(), event.SerializeAsString());
  EXPECT_TRUE(VerifyEvent(key->public_key, *signed_event));
  v1::SignedEvent changed = *signed_event;
  event.mutable_visit_recorded()->set_notes("b");
  changed.set_event(event.SerializeAsString());
  EXPECT_FALSE(VerifyEvent(key->public_key, changed));
  EXPECT_TRUE(absl::IsInvalidArgument(SignEvent("short", event).status()));
}

TEST(RetryTest, BackoffGrowsIsCappedAndHonoursRetryAfter) {
  RetryPolicy policy;
  policy.initial_backoff = absl::Milliseconds(100);
  policy.max_backoff = absl::Seconds(1);
  for (int i = 0; i < 200; ++i) {
    EXPECT_LE(Backoff(policy, 1, absl::ZeroDuration()), absl::Milliseconds(100));
    EXPECT_GE(Backoff(policy, 1, absl::ZeroDuration()), absl::Milliseconds(50));
    EXPECT_GE(Backoff(policy, 3, absl::ZeroDuration()), absl::Milliseconds(200));
    EXPECT_LE(Backoff(policy, 3, absl::ZeroDuration()), absl::Milliseconds(400));
    EXPECT_LE(Backoff(policy, 30, absl::ZeroDuration()), absl::Seconds(1));
    EXPECT_GE(Backoff(policy, 1, absl::Seconds(5)), absl::Seconds(5));
  }
  EXPECT_TRUE(Retryable(grpc::Status(grpc::StatusCode::UNAVAILABLE, "")));
  EXPECT_TRUE(Retryable(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "")));
  EXPECT_FALSE(Retryable(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "")));
}

TEST(ConfigTest, KeyValueLinesWithCommentsAndQuotes) {
  auto config = fieldctl::ParseConfig(
      "# fieldctl\nserver = \"10.0.0.1:50051\"\n\ndb = /data/phone.db  # bare\n[ignored]\n");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)["server"], "10.0.0.1:50051");
  EXPECT_EQ((*config)["db"], "/data/phone.db");
  EXPECT_TRUE(absl::IsInvalidArgument(fieldctl::ParseConfig("server\n").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(fieldctl::ParseConfig("server = \"open\n").status()));
}

}  // namespace
}  // namespace fieldsync::client
