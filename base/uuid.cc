#include "base/uuid.h"

namespace fieldsync::base {

std::string UuidV4(const unsigned char (&random)[16]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    unsigned char byte = random[i];
    if (i == 6) byte = (byte & 0x0f) | 0x40;  // Version 4.
    if (i == 8) byte = (byte & 0x3f) | 0x80;  // Variant 10.
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xf]);
  }
  return out;
}

}  // namespace fieldsync::base
