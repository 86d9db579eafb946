#include "server/stream_wire.h"

#include <grpcpp/support/slice.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace fieldsync::server::stream {
namespace {

using google::protobuf::internal::WireFormatLite;

// Field numbers and tags of the messages written and read here
// (stream_service.proto, event.proto, common.proto).
constexpr uint32_t kStoredEventEvent = 1;
constexpr uint32_t kEventSubject = 7;
constexpr uint32_t kEventAreaCode = 8;
constexpr uint32_t kFirstBody = 20;   // Event.body: fields 20..
constexpr uint32_t kLastBody = 99;    // ..up to here (45 today; room for new bodies).
constexpr uint32_t kSubjectKind = 1;
constexpr uint32_t kSubjectId = 2;

constexpr char kTagEntryOffset = 0x08;     // LogEntry.offset = 1, varint.
constexpr char kTagEntryPrevHash = 0x12;   // LogEntry.prev_hash = 2, bytes.
constexpr char kTagEntryHash = 0x1A;       // LogEntry.hash = 3, bytes.
constexpr char kTagEntryRecord = 0x22;     // LogEntry.record = 4, bytes.
constexpr char kTagBatchEvents = 0x1A;     // EventBatch.events = 3, message.
constexpr char kTagBatchThrough = 0x10;    // EventBatch.through_offset = 2, varint.
constexpr char kTagResponseBatch = 0x22;   // SubscribeResponse.batch = 4, message.

// Room before the batch for the response's tag (1 byte) and length (<= 5).
constexpr size_t kHeaderRoom = 6;

size_t VarintSize(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// The LogEntry of a record, field by field: offset, prev_hash, hash, then the
// payload verbatim as `record` (the same bytes sync::ToLogEntry serializes to).
size_t FrameSize(const storage::LogRecord& record) {
  return 1 + VarintSize(record.offset) + 1 + VarintSize(record.prev_hash.size()) +
         record.prev_hash.size() + 1 + VarintSize(record.hash.size()) + record.hash.size() + 1 +
         VarintSize(record.payload.size());
}

void AppendEntry(const storage::LogRecord& record, std::string* out) {
  out->push_back(kTagEntryOffset);
  AppendVarint(record.offset, out);
  out->push_back(kTagEntryPrevHash);
  AppendVarint(record.prev_hash.size(), out);
  out->append(record.prev_hash);
  out->push_back(kTagEntryHash);
  AppendVarint(record.hash.size(), out);
  out->append(record.hash);
  out->push_back(kTagEntryRecord);
  AppendVarint(record.payload.size(), out);
  out->append(record.payload);
}

// Reads a length-delimited field's bytes as a view into `base`.
bool ReadView(google::protobuf::io::CodedInputStream& in, const char* base,
              std::string_view* out) {
  uint32_t length;
  if (!in.ReadVarint32(&length)) return false;
  const int at = in.CurrentPosition();
  if (!in.Skip(static_cast<int>(length))) return false;
  *out = std::string_view(base + at, length);
  return true;
}

bool ScanSubject(std::string_view bytes, RecordKeys* keys) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                           static_cast<int>(bytes.size()));
  keys->has_subject = true;
  while (uint32_t tag = in.ReadTag()) {
    const uint32_t field = WireFormatLite::GetTagFieldNumber(tag);
    const auto type = WireFormatLite::GetTagWireType(tag);
    if (field == kSubjectKind && type == WireFormatLite::WIRETYPE_VARINT) {
      uint32_t kind;
      if (!in.ReadVarint32(&kind)) return false;
      keys->subject_kind = static_cast<int>(kind);
    } else if (field == kSubjectId && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!ReadView(in, bytes.data(), &keys->subject_id)) return false;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return in.ConsumedEntireMessage();
}

bool ScanEvent(std::string_view bytes, RecordKeys* keys) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                           static_cast<int>(bytes.size()));
  while (uint32_t tag = in.ReadTag()) {
    const uint32_t field = WireFormatLite::GetTagFieldNumber(tag);
    const bool delimited =
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (delimited && field == kEventAreaCode) {
      if (!ReadView(in, bytes.data(), &keys->area_code)) return false;
    } else if (delimited && field == kEventSubject) {
      std::string_view subject;
      if (!ReadView(in, bytes.data(), &subject) || !ScanSubject(subject, keys)) return false;
    } else if (delimited && field >= kFirstBody && field <= kLastBody) {
      // The oneof's last occurrence wins, as in a parser.
      keys->body = static_cast<int>(field);
      if (!WireFormatLite::SkipField(&in, tag)) return false;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return in.ConsumedEntireMessage();
}

void DeleteString(void* string) { delete static_cast<std::string*>(string); }

}  // namespace

absl::StatusOr<RecordKeys> ScanRecord(std::string_view payload, uint64_t offset) {
  RecordKeys keys;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(payload.data()),
                                           static_cast<int>(payload.size()));
  bool ok = true;
  while (uint32_t tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == kStoredEventEvent &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      std::string_view event;
      // A repeated message field merges; an event appears once in what the
      // engine writes, and a second one would only add fields.
      if (!ReadView(in, payload.data(), &event) || !ScanEvent(event, &keys)) {
        ok = false;
        break;
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      ok = false;
      break;
    }
  }
  if (!ok || !in.ConsumedEntireMessage()) {
    return absl::DataLossError(absl::StrCat("record ", offset, " does not parse"));
  }
  return keys;
}

size_t EncodedSize(const storage::LogRecord& record) {
  return record.payload.size() + FrameSize(record);
}

std::string EncodeLogEntry(const storage::LogRecord& record) {
  std::string out;
  out.reserve(EncodedSize(record));
  AppendEntry(record, &out);
  return out;
}

BatchBuilder::BatchBuilder(size_t max_events, size_t max_bytes)
    : max_events_(max_events), max_bytes_(max_bytes), out_(kHeaderRoom, '\0') {
  out_.reserve(kHeaderRoom + std::min<size_t>(max_bytes, 4 << 20) + 64);
}

bool BatchBuilder::Fits(size_t encoded_size) const {
  if (events_ == 0) return true;
  return events_ < max_events_ && event_bytes_ + encoded_size <= max_bytes_;
}

void BatchBuilder::Add(const storage::LogRecord& record) {
  const size_t size = EncodedSize(record);
  out_.push_back(kTagBatchEvents);
  AppendVarint(size, &out_);
  AppendEntry(record, &out_);
  ++events_;
  event_bytes_ += size;
}

void BatchBuilder::AddEncoded(std::string_view stored_event) {
  out_.push_back(kTagBatchEvents);
  AppendVarint(stored_event.size(), &out_);
  out_.append(stored_event);
  ++events_;
  event_bytes_ += stored_event.size();
}

grpc::ByteBuffer BatchBuilder::Finish(uint64_t through) {
  out_.push_back(kTagBatchThrough);
  AppendVarint(through, &out_);
  const size_t batch = out_.size() - kHeaderRoom;
  std::string header(1, kTagResponseBatch);
  AppendVarint(batch, &header);
  const size_t start = kHeaderRoom - header.size();
  out_.replace(start, header.size(), header);
  auto* owned = new std::string(std::move(out_));
  grpc::Slice slice(owned->data() + start, owned->size() - start, &DeleteString, owned);
  return grpc::ByteBuffer(&slice, 1);
}

grpc::ByteBuffer SerializeToBuffer(const google::protobuf::MessageLite& message) {
  auto* owned = new std::string(message.SerializeAsString());
  grpc::Slice slice(owned->data(), owned->size(), &DeleteString, owned);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace fieldsync::server::stream
