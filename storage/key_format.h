// The on-disk format of fieldsync's event store: column families, key layouts
// and value layouts. docs/storage-format.md describes the same with examples.
// Changing anything here is a format change: bump kFormatVersion and write a
// migration.
//
// All integers in keys are big-endian so that RocksDB's bytewise order is
// numeric order.
//
// Column family "log"          key  u64 offset
//                              value u8 record_format (=1) | 32 prev_hash | 32 hash | payload
//   hash = SHA-256( prev_hash | u64 offset | payload ); record 1's prev_hash is 32 zero bytes.
// Column family "event_ids"    key  event_id bytes            value u64 offset
// Column family "subjects"     key  u16 len | subject | u64 offset        value empty
// Column family "scopes"       key  u8 len | area-code prefix | u64 offset value empty
//   one key per configured prefix length of the event's 12-digit area code
//   (county 6, township 9, village 12 by default).
// Column family "projections"  key  caller-defined bytes      value caller-defined bytes
// Column family "blobs"        key  'B' | 32 sha256           value content (in blob files)
//                              key  'U' | 32 sha256           value u64 total_size
//                                                                   | u64 received_bytes
//                                                                   | i64 updated_at (Unix µs)
//                                                                   | owner (to the end)
//   (an upload in progress; its bytes are in the file blob_uploads/<hex sha256> in the store's
//   directory, of which the first received_bytes count)
//                              key  'C' | 32 sha256 | u64 off value chunk bytes
//   (older builds only; discarded with their 16-byte 'U' entries when the store opens)
// Column family "default"      key  "format_version"          value u64
//                              key  "head"                    value u64 (head after the last group)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fieldsync::storage::keys {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint8_t kRecordFormat = 1;
inline constexpr size_t kHashSize = 32;
inline constexpr size_t kRecordHeaderSize = 1 + 2 * kHashSize;

inline constexpr char kLogFamily[] = "log";
inline constexpr char kEventIdFamily[] = "event_ids";
inline constexpr char kSubjectFamily[] = "subjects";
inline constexpr char kScopeFamily[] = "scopes";
inline constexpr char kProjectionFamily[] = "projections";
inline constexpr char kBlobFamily[] = "blobs";
inline constexpr char kFormatVersionKey[] = "format_version";

inline constexpr char kBlobContentTag = 'B';
inline constexpr char kBlobUploadTag = 'U';
inline constexpr char kBlobChunkTag = 'C';
// The directory (inside the store's) of partial uploads' bytes.
inline constexpr char kBlobUploadDir[] = "blob_uploads";

std::string LogKey(uint64_t offset);
std::optional<uint64_t> ParseLogKey(std::string_view key);

std::string OffsetValue(uint64_t offset);

// The prefix of every subject-index key of `subject`, and one full key.
std::string SubjectPrefix(std::string_view subject);
std::string SubjectKey(std::string_view subject, uint64_t offset);

std::string ScopePrefix(std::string_view area_prefix);
std::string ScopeKey(std::string_view area_prefix, uint64_t offset);

// The offset stored in the last 8 bytes of an index key.
uint64_t IndexKeyOffset(std::string_view key);

std::string BlobContentKey(std::string_view sha256);
std::string BlobUploadKey(std::string_view sha256);
std::string BlobChunkPrefix(std::string_view sha256);
std::string BlobChunkKey(std::string_view sha256, uint64_t offset);

}  // namespace fieldsync::storage::keys
