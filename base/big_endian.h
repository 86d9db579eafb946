// Big-endian encoding of unsigned 64-bit integers, the form every integer in
// our store keys takes so that RocksDB's bytewise order is numeric order.
// The only copy in the tree (storage keys, sync keys and domain keys use it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fieldsync::base {

// Appends the 8 big-endian bytes of `value` to `*out`.
void AppendBe64(std::string* out, uint64_t value);

// The 8 big-endian bytes of `value`.
std::string Be64(uint64_t value);

// The value of exactly 8 big-endian bytes; nullopt if `bytes` is not 8 bytes
// long (the caller decides what a malformed value means: usually DATA_LOSS).
std::optional<uint64_t> ParseBe64(std::string_view bytes);

// The value of the first 8 bytes of `bytes`, which must hold at least 8
// (the caller has checked the size: a key or record of a known layout).
uint64_t ReadBe64Prefix(std::string_view bytes);

}  // namespace fieldsync::base
