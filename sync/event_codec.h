// How events travel between the protobuf world and the event store.
//
// The store keeps opaque payloads; fieldsync's payload is a deterministic
// serialization of fieldsync.v1.StoredEvent with offset, prev_hash and hash
// cleared (the store's record frame holds those, see storage/key_format.h).
// DecodeRecord puts them back. Every function here is pure and thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fieldsync/v1/event.pb.h"
#include "storage/event_store.h"

namespace fieldsync::sync {

// The subject-index key of a subject: "<kind>/<id>", kind in lower snake case
// without the prefix ("household/620102001001-0001", "user/u-42").
std::string SubjectKey(const v1::SubjectRef& subject);

// The lower-snake name of a subject kind ("household"); "unspecified" for 0.
std::string SubjectKindName(v1::SubjectKind kind);

// The SubjectRef of a subject key made by SubjectKey; nullopt if `key` is not
// "<known kind>/<non-empty id>".
std::optional<v1::SubjectRef> ParseSubjectKey(std::string_view key);

// The deterministic serialization of any message (field-number order, map
// entries sorted by key), as used for signatures and content comparison.
std::string DeterministicBytes(const google::protobuf::MessageLite& message);

// SHA-256 (32 bytes) of the event's deterministic serialization, signature
// included: two pushes carry "the same content" iff their hashes are equal.
std::string EventContentHash(const v1::Event& event);

// The bytes a device signs with Ed25519: the deterministic serialization of
// `event` with `signature` cleared.
std::string CanonicalEventBytes(const v1::Event& event);

// The key of an event in the store's event_id index (storage AppendEntry.event_id):
// "<device_id>/<event_id>". Idempotency is per signing device: a second device using the same
// event_id is a different event, so no device can occupy another's id. Device ids never
// contain '/' (server-made), so the key is unambiguous. Callers keep it within the store's
// max_event_id_bytes (128): a server-made device id (at most 64 bytes) and a UUID fit.
std::string LogEventId(std::string_view device_id, std::string_view event_id);

// The record payload of `stored` (offset and hashes cleared, deterministic).
std::string EncodePayload(const v1::StoredEvent& stored);

// An AppendEntry for `stored`: event_id (LogEventId of the event's device and id), subject key,
// area code and payload.
storage::AppendEntry ToAppendEntry(const v1::StoredEvent& stored);

// True for a rejection marker: a log record without a body that the sync
// engine appends to carry the projection writes of a rejected event (the store
// writes projections only with a record). Markers are bookkeeping, not
// events: readers of the log (pulls, history, subscriptions, exports) skip
// them. See docs/sync.md "Rejections".
bool IsRejectionMarker(const v1::StoredEvent& stored);

// The StoredEvent of a log record, with offset, prev_hash and hash filled from
// the record frame. DataLoss if the payload does not parse.
absl::StatusOr<v1::StoredEvent> DecodeRecord(const storage::LogRecord& record);

}  // namespace fieldsync::sync
