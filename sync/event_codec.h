// How events travel between the protobuf world and the event store.
//
// The store keeps opaque payloads; fieldsync's payload is a fieldsync.v1.StoredEvent, encoded
// once by the server when it appends it and never again: its `event` field holds the device's
// signed Event bytes verbatim, and offset, prev_hash and hash live in the store's record frame
// (storage/key_format.h). A record travels as a v1.LogEntry built from the frame and the
// payload bytes, without re-encoding (event.proto, LogEntry). This file is the one place that
// knows that layout. Every function here is pure and thread-safe.
#pragma once

#include <cstdint>
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
// entries sorted by key), for projections and content comparison. Never for
// signatures or the hash chain: those cover the bytes that travel.
std::string DeterministicBytes(const google::protobuf::MessageLite& message);

// SHA-256 (32 bytes) identifying a signed event's content: over the event
// bytes (length-prefixed) and the signature as received. Two pushes carry "the
// same content" iff they carry the same bytes and signature (a re-encoding of
// the same Event is other content: a resend must send the stored bytes).
std::string EventContentHash(std::string_view event_bytes, std::string_view signature);

// Why a SignedEvent's event bytes were refused (a MALFORMED rejection).
struct BadEventBytes {
  std::string field;    // "event" for bytes that do not parse; else the path of
                        // the message holding an unknown field ("" = the Event).
  std::string message;  // Names the unknown field number, or why it does not parse.
};

// Parses the event bytes of a SignedEvent into `event`. Nullopt when they parse
// and every field, at any depth, is one this server knows; else what is wrong.
// Unknown fields are never kept (docs/sync.md "Signed bytes"). When the bytes
// do not parse, `event` holds what a walk of the top-level wire format found of
// the envelope (event_id, device_id, device_seq), so that the signature can
// still prove who sent them and the refusal can take its device_seq.
std::optional<BadEventBytes> ParseEventBytes(std::string_view bytes, v1::Event* event);

// The key of an event in the store's event_id index (storage AppendEntry.event_id):
// "<device_id>/<event_id>". Idempotency is per signing device: a second device using the same
// event_id is a different event, so no device can occupy another's id. Device ids never
// contain '/' (server-made), so the key is unambiguous. Callers keep it within the store's
// max_event_id_bytes (128): a server-made device id (at most 64 bytes) and a UUID fit.
std::string LogEventId(std::string_view device_id, std::string_view event_id);

// The record payload of `stored`: its encoding, made once at append.
std::string EncodePayload(const v1::StoredEvent& stored);

// An AppendEntry for `stored` whose event bytes parse to `event`: event_id
// (LogEventId of the event's device and id), subject key, area code and payload.
storage::AppendEntry ToAppendEntry(const v1::StoredEvent& stored, const v1::Event& event);

// True for a rejection marker: a log record without event bytes that the sync
// engine appends to carry the projection writes of a rejected event (the store
// writes projections only with a record). Markers are bookkeeping, not
// events: readers of the log (pulls, history, subscriptions, exports) skip
// them. See docs/sync.md "Rejections".
bool IsRejectionMarker(const v1::StoredEvent& stored);
// The same, from a record's payload bytes alone (no full parse).
bool IsRejectionMarkerPayload(std::string_view payload);

// One log record, decoded: its frame, its StoredEvent and the Event parsed from
// StoredEvent.event. The accessors read like the record's fields, so code that
// reads the log looks the same whether it holds a record or an entry.
struct LoggedEvent {
  uint64_t offset_ = 0;
  std::string prev_hash_;
  std::string hash_;
  v1::StoredEvent stored;
  v1::Event parsed;  // Empty (no body) for a rejection marker.
  // The record bytes as received (DecodeLogEntry only; empty otherwise): what
  // the hash covers.
  std::string record_;

  uint64_t offset() const { return offset_; }
  const std::string& prev_hash() const { return prev_hash_; }
  const std::string& hash() const { return hash_; }
  const std::string& record() const { return record_; }
  const v1::Event& event() const { return parsed; }
  // The signed bytes of the event and their signature, as stored.
  const std::string& event_bytes() const { return stored.event(); }
  const std::string& signature() const { return stored.signature(); }
  const google::protobuf::Timestamp& received_at() const { return stored.received_at(); }
  const std::string& actor() const { return stored.actor(); }
  const std::string& relayed_by() const { return stored.relayed_by(); }
  bool hlc_flagged() const { return stored.hlc_flagged(); }
  uint64_t adopted_hlc() const { return stored.adopted_hlc(); }
  const google::protobuf::RepeatedPtrField<v1::WriteOutcome>& writes() const {
    return stored.writes();
  }
  bool is_marker() const { return IsRejectionMarker(stored); }
};

// The decoded record. DataLoss if the payload or its event bytes do not parse.
absl::StatusOr<LoggedEvent> DecodeRecord(const storage::LogRecord& record);

// The LogEntry of a record: offset, hashes (unless `omit_proofs`) and the
// payload bytes as stored.
v1::LogEntry ToLogEntry(const storage::LogRecord& record, bool omit_proofs = false);
v1::LogEntry ToLogEntry(storage::LogRecord&& record, bool omit_proofs = false);

// A received LogEntry, decoded (for clients, exports and tests of the wire).
// InvalidArgument if `record` or its event bytes do not parse.
absl::StatusOr<LoggedEvent> DecodeLogEntry(const v1::LogEntry& entry);

}  // namespace fieldsync::sync
