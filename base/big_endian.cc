#include "base/big_endian.h"

namespace fieldsync::base {

void AppendBe64(std::string* out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

std::string Be64(uint64_t value) {
  std::string out;
  out.reserve(8);
  AppendBe64(&out, value);
  return out;
}

uint64_t ReadBe64Prefix(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  return value;
}

std::optional<uint64_t> ParseBe64(std::string_view bytes) {
  if (bytes.size() != 8) return std::nullopt;
  return ReadBe64Prefix(bytes);
}

}  // namespace fieldsync::base
