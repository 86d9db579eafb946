#include "base/text.h"

#include <algorithm>

namespace fieldsync::base {

size_t Utf8SequenceLength(std::string_view s, size_t i, uint32_t* code_point) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = byte(i);
  if (c < 0x80) {
    *code_point = c;
    return 1;
  }
  size_t length;
  uint32_t code;
  if ((c & 0xe0) == 0xc0) {
    length = 2;
    code = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    length = 3;
    code = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    length = 4;
    code = c & 0x07;
  } else {
    return 0;
  }
  if (length > s.size() - i) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i + k) & 0x3f);
  }
  // The shortest form only: an overlong encoding could smuggle '/' or NUL
  // past a check of the decoded text.
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (code < kMin[length] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  *code_point = code;
  return length;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t code_point;
    const size_t length = Utf8SequenceLength(s, i, &code_point);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

bool IsCleanText(std::string_view s, size_t max_bytes, bool multiline) {
  if (s.empty() || s.size() > max_bytes) return false;
  for (size_t i = 0; i < s.size();) {
    uint32_t code_point = 0;
    const size_t length = Utf8SequenceLength(s, i, &code_point);
    if (length == 0) return false;
    if (code_point < 0x20 || code_point == 0x7f) {
      const bool allowed =
          multiline && (code_point == '\n' || code_point == '\t' || code_point == '\r');
      if (!allowed) return false;
    }
    i += length;
  }
  return true;
}

bool IsPlainId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '_' || c == ':' || c == '-';
  });
}

bool IsDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace fieldsync::base
