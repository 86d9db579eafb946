// The sync engine's part of the projections key space. Everything under
// "sync/" is written by the engine in the prepare hooks of its appends, so it
// commits in the same WriteBatch as the log record it belongs to. docs/sync.md
// "Projection key layout" describes the same; "\0" is a NUL byte, be64 a
// big-endian u64 (so byte order is numeric order), ~x the bitwise complement
// (so that ascending key order is newest first).
//
//   sync/dev/<device_id>                      be64 last device_seq applied (accepted or rejected)
//   sync/subj/<subject_key>                   the subject's area code ("" if none)
//   sync/area/<area_code>\0<subject_key>      ""  subjects by area, for snapshots
//   sync/rej/r/<be64 marker offset>           v1.RejectionRecord
//   sync/rej/h/<32-byte content hash>         be64 marker offset (replay answers)
//   sync/rej/d/<device_id>\0<be64 ~offset>    ""  a device's rejections, newest first
//   sync/rej/a/<prefix>\0<be64 ~offset>       ""  by area prefix (6, 9 and 12 digits), newest first
//   sync/rej/t/<be64 ~offset>                 ""  all rejections, newest first
//   sync/pend/b/<32-byte sha256>\0<be64 off>  ""  event at `off` refers to a blob not uploaded then
//   sync/pend/e/<event_id>\0<be64 off>        ""  event at `off` refers to an event not in the log
//   then
//   sync/eid/<event_id>\0<device_id>          be64 offset of the event `event_id` that `device_id`
//                                             signed (accepted events only): how references by
//                                             event_id find their candidates
//
// The store's own event_id index (storage AppendEntry.event_id) holds the engine's events under
// LogEventId (sync/event_codec.h), "<device_id>/<event_id>": idempotency is per signing device,
// so no device can occupy another's event_id. This replaced the bare event_id before any
// production store existed; stores written before it are not migrated (there are none).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fieldsync::sync::sync_keys {

inline constexpr std::string_view kDevicePrefix = "sync/dev/";
inline constexpr std::string_view kSubjectPrefix = "sync/subj/";
inline constexpr std::string_view kAreaPrefix = "sync/area/";
inline constexpr std::string_view kRejectionPrefix = "sync/rej/r/";
inline constexpr std::string_view kRejectionHashPrefix = "sync/rej/h/";
inline constexpr std::string_view kRejectionDevicePrefix = "sync/rej/d/";
inline constexpr std::string_view kRejectionAreaPrefix = "sync/rej/a/";
inline constexpr std::string_view kRejectionAllPrefix = "sync/rej/t/";
inline constexpr std::string_view kPendingBlobPrefix = "sync/pend/b/";
inline constexpr std::string_view kPendingEventPrefix = "sync/pend/e/";
inline constexpr std::string_view kEventIdPrefix = "sync/eid/";

std::string Device(std::string_view device_id);
std::string Subject(std::string_view subject_key);
std::string Area(std::string_view area_code, std::string_view subject_key);
// The prefix of every subject under an area prefix (any length).
std::string AreaScan(std::string_view area_prefix);
std::string Rejection(uint64_t offset);
std::string RejectionHash(std::string_view content_hash);
std::string RejectionDevicePrefix(std::string_view device_id);
std::string RejectionDevice(std::string_view device_id, uint64_t offset);
std::string RejectionAreaPrefix(std::string_view area_prefix);
std::string RejectionArea(std::string_view area_prefix, uint64_t offset);
std::string RejectionAll(uint64_t offset);
std::string PendingBlob(std::string_view sha256, uint64_t offset);
std::string PendingEvent(std::string_view event_id, uint64_t offset);
// The signers of `event_id`: sync/eid/<event_id>\0, then one key per device.
std::string EventIdPrefix(std::string_view event_id);
std::string EventId(std::string_view event_id, std::string_view device_id);
// The offset in the last 8 bytes of an index key (complemented for the
// newest-first indexes: pass complemented = true).
uint64_t TrailingOffset(std::string_view key, bool complemented);

}  // namespace fieldsync::sync::sync_keys
