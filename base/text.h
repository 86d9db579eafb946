// Checks of client- and admin-supplied strings: UTF-8, ASCII digits, UUIDs.
// The only copies in the tree; domain validation, server ids and the JSON
// log escaper build on them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fieldsync::base {

// The length (1..4) of the well-formed UTF-8 sequence that starts at s[i],
// and its code point in `*code_point`; 0 if there is none: a stray
// continuation byte, a sequence cut short by the end of `s`, an overlong
// form, a surrogate (U+D800..U+DFFF) or a value past U+10FFFF.
// Requires i < s.size().
size_t Utf8SequenceLength(std::string_view s, size_t i, uint32_t* code_point);

// True if all of `s` is well-formed UTF-8 (the empty string is).
bool IsValidUtf8(std::string_view s);

// True if `s` is 1..max_bytes of well-formed UTF-8 without control
// characters (U+0000..U+001F, U+007F); with `multiline`, tab, newline and
// carriage return are allowed. Names, notes and free text pass through this.
bool IsCleanText(std::string_view s, size_t max_bytes, bool multiline = false);

// True if `s` matches [A-Za-z0-9._:-]{1,64}: the ids the server or the admin
// gives records (users, units, devices).
bool IsPlainId(std::string_view s);

// True if `s` is only ASCII digits '0'..'9' (the empty string is).
bool IsDigits(std::string_view s);

// True if `s` is a lowercase RFC 4122 textual UUID: 36 characters, hex
// digits 0-9a-f with hyphens at 8, 13, 18 and 23 (version bits not checked).
bool IsUuid(std::string_view s);

}  // namespace fieldsync::base
