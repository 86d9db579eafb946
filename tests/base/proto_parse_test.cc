#include "base/proto_parse.h"

#include <string>

#include "google/protobuf/timestamp.pb.h"
#include "gtest/gtest.h"

namespace fieldsync::base {
namespace {

TEST(ParseStoredTest, StoredBytesParseBack) {
  google::protobuf::Timestamp t;
  t.set_seconds(42);
  absl::StatusOr<google::protobuf::Timestamp> parsed =
      ParseStored<google::protobuf::Timestamp>("k", t.SerializeAsString());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->seconds(), 42);
}

TEST(ParseStoredTest, BytesThatDoNotParseAreDataLossNamingTheKey) {
  absl::StatusOr<google::protobuf::Timestamp> parsed =
      ParseStored<google::protobuf::Timestamp>("dom/h/1", "\xff\xff\xff");
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(parsed.status().message(), "projection dom/h/1 does not parse");
}

TEST(ParseStoredTest, AnAbsentValueStaysAbsent) {
  absl::StatusOr<std::optional<google::protobuf::Timestamp>> parsed =
      ParseStoredOptional<google::protobuf::Timestamp>("k", std::nullopt);
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->has_value());
  parsed = ParseStoredOptional<google::protobuf::Timestamp>("k", std::string("\xff", 1));
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace fieldsync::base
