#include "base/big_endian.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace fieldsync::base {
namespace {

TEST(BigEndianTest, RoundTripsAtTheEdges) {
  for (uint64_t value : {uint64_t{0}, uint64_t{1}, uint64_t{0xff}, uint64_t{0x100},
                         uint64_t{0x0123456789abcdef}, std::numeric_limits<uint64_t>::max()}) {
    const std::string bytes = Be64(value);
    ASSERT_EQ(bytes.size(), 8u);
    EXPECT_EQ(ParseBe64(bytes), value);
    EXPECT_EQ(ReadBe64Prefix(bytes + "trailing"), value);
  }
}

TEST(BigEndianTest, MostSignificantByteComesFirst) {
  EXPECT_EQ(Be64(0x0102030405060708), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
}

TEST(BigEndianTest, BytewiseOrderIsNumericOrder) {
  EXPECT_LT(Be64(255), Be64(256));
  EXPECT_LT(Be64(1), Be64(std::numeric_limits<uint64_t>::max()));
}

TEST(BigEndianTest, AppendKeepsWhatIsThere) {
  std::string out = "k/";
  AppendBe64(&out, 7);
  EXPECT_EQ(out, std::string("k/\0\0\0\0\0\0\0\x07", 10));
}

TEST(BigEndianTest, ShortOrLongInputIsNotAValue) {
  EXPECT_EQ(ParseBe64(""), std::nullopt);
  EXPECT_EQ(ParseBe64(std::string(7, '\xff')), std::nullopt);
  EXPECT_EQ(ParseBe64(std::string(9, '\0')), std::nullopt);
}

}  // namespace
}  // namespace fieldsync::base
