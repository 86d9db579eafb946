// The bytes of the event stream (fieldsync.v1.SubscribeResponse), made from
// log records without parsing or re-serializing the events.
//
// A record's payload is the StoredEvent as stored (sync/event_codec.h); it
// travels as a LogEntry: offset, prev_hash and hash from the record frame, and
// the payload verbatim as `record`, over which the consumer checks the hash
// (docs/storage.md). So a batch is a memcpy per event, not a parse and a
// serialization: what makes Subscribe fast enough for HQ's catch-up.
//
// ScanRecord reads what a stream filter needs (the body kind, the area code,
// the subject) by walking the wire format, skipping everything else.
//
// Everything here is a pure function or a value type; thread-compatible.
#pragma once

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"
#include "storage/event_store.h"

namespace fieldsync::server::stream {

// What a stream filter looks at, viewed in the payload it was scanned from
// (valid while that payload is).
struct RecordKeys {
  // The Event body's field number, which is its EventKind; 0: no body (a
  // rejection marker, never streamed).
  int body = 0;
  std::string_view area_code;
  bool has_subject = false;
  int subject_kind = 0;
  std::string_view subject_id;
};

// The keys of a record payload. DataLoss if the payload is not a
// well-formed StoredEvent (the store's bytes are corrupt).
absl::StatusOr<RecordKeys> ScanRecord(std::string_view payload, uint64_t offset);

// The serialized LogEntry of `record`: offset, prev_hash, hash, and the
// payload as `record`. The same bytes as sync::ToLogEntry(record) serialized.
std::string EncodeLogEntry(const storage::LogRecord& record);
// The old name of EncodeLogEntry, kept while server/stream_service.cc is being
// split on another branch (s4); use EncodeLogEntry.
inline std::string EncodeStoredEvent(const storage::LogRecord& record) {
  return EncodeLogEntry(record);
}
// The size EncodeLogEntry would return, without making it.
size_t EncodedSize(const storage::LogRecord& record);

// Builds one SubscribeResponse{batch: EventBatch} message in one buffer.
// Bounds: at most max_events events, and at most max_bytes of encoded events
// unless a single event is larger (a batch always takes its first event).
class BatchBuilder {
 public:
  BatchBuilder(size_t max_events, size_t max_bytes);

  size_t events() const { return events_; }
  size_t event_bytes() const { return event_bytes_; }
  // Whether an event of `encoded_size` bytes may still be added.
  bool Fits(size_t encoded_size) const;
  bool Full() const { return events_ >= max_events_ || event_bytes_ >= max_bytes_; }

  // Appends the record's LogEntry (EncodeLogEntry without the copy).
  void Add(const storage::LogRecord& record);
  // Appends an event already encoded by EncodeLogEntry.
  void AddEncoded(std::string_view stored_event);

  // The message, with EventBatch.through_offset = `through`; the builder is
  // spent. The buffer owns its one slice (no further copy).
  grpc::ByteBuffer Finish(uint64_t through);

 private:
  const size_t max_events_;
  const size_t max_bytes_;
  size_t events_ = 0;
  size_t event_bytes_ = 0;
  // kHeaderRoom bytes for the response's tag and length, then the batch.
  std::string out_;
};

// A message as one-slice ByteBuffer (for the caught_up marker and heartbeats).
grpc::ByteBuffer SerializeToBuffer(const google::protobuf::MessageLite& message);

}  // namespace fieldsync::server::stream
