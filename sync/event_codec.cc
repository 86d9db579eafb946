#include "sync/event_codec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/wire_format_lite.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/big_endian.h"
#include "storage/sha256.h"

namespace fieldsync::sync {
namespace {

// The path and number of the first unknown field in `message` (depth-first, in
// field order), or nullopt. Beyond a nesting depth no Event reaches, the
// message counts as unknown content itself (no unbounded recursion on input).
std::optional<BadEventBytes> FindUnknownField(const google::protobuf::Message& message,
                                              const std::string& path, int depth) {
  if (depth > 32) return BadEventBytes{path, "the event nests deeper than any known field"};
  const google::protobuf::Reflection* reflection = message.GetReflection();
  const google::protobuf::UnknownFieldSet& unknown = reflection->GetUnknownFields(message);
  if (!unknown.empty()) {
    const int number = unknown.field(0).number();
    return BadEventBytes{
        path, absl::StrCat("field number ", number, " of ", message.GetDescriptor()->full_name(),
                           path.empty() ? "" : absl::StrCat(" (at ", path, ")"),
                           " is not known to this server; unknown fields are never kept")};
  }
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    const std::string child = path.empty() ? field->name() : absl::StrCat(path, ".", field->name());
    if (field->is_repeated()) {
      const int n = reflection->FieldSize(message, field);
      for (int i = 0; i < n; ++i) {
        if (auto bad = FindUnknownField(reflection->GetRepeatedMessage(message, field, i),
                                        absl::StrCat(child, "[", i, "]"), depth + 1)) {
          return bad;
        }
      }
    } else if (auto bad =
                   FindUnknownField(reflection->GetMessage(message, field), child, depth + 1)) {
      return bad;
    }
  }
  return std::nullopt;
}

// The envelope fields of event bytes that do not parse, read tag by tag at the
// top level (no UTF-8 check: these are claims to verify, never stored text);
// stops at the first malformed tag.
void ScanEnvelope(std::string_view bytes, v1::Event* event) {
  namespace wire = google::protobuf::internal;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  while (uint32_t tag = in.ReadTag()) {
    const int field = wire::WireFormatLite::GetTagFieldNumber(tag);
    const auto type = wire::WireFormatLite::GetTagWireType(tag);
    if (type == wire::WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
        (field == v1::Event::kEventIdFieldNumber || field == v1::Event::kDeviceIdFieldNumber)) {
      std::string value;
      uint32_t length;
      if (!in.ReadVarint32(&length) || !in.ReadString(&value, static_cast<int>(length))) return;
      if (field == v1::Event::kEventIdFieldNumber) {
        event->set_event_id(std::move(value));
      } else {
        event->set_device_id(std::move(value));
      }
    } else if (type == wire::WireFormatLite::WIRETYPE_VARINT &&
               field == v1::Event::kDeviceSeqFieldNumber) {
      uint64_t seq;
      if (!in.ReadVarint64(&seq)) return;
      event->set_device_seq(seq);
    } else if (!wire::WireFormatLite::SkipField(&in, tag)) {
      return;
    }
  }
}

}  // namespace

std::string DeterministicBytes(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string SubjectKindName(v1::SubjectKind kind) {
  std::string name = v1::SubjectKind_Name(kind);
  constexpr std::string_view kPrefix = "SUBJECT_KIND_";
  if (name.rfind(kPrefix, 0) == 0) name = name.substr(kPrefix.size());
  if (name.empty()) name = "unknown";
  return absl::AsciiStrToLower(name);
}

std::string SubjectKey(const v1::SubjectRef& subject) {
  return absl::StrCat(SubjectKindName(subject.kind()), "/", subject.id());
}

std::optional<v1::SubjectRef> ParseSubjectKey(std::string_view key) {
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == key.size()) return std::nullopt;
  const std::string kind_name =
      absl::StrCat("SUBJECT_KIND_", absl::AsciiStrToUpper(std::string(key.substr(0, slash))));
  v1::SubjectKind kind;
  if (!v1::SubjectKind_Parse(kind_name, &kind) || kind == v1::SUBJECT_KIND_UNSPECIFIED) {
    return std::nullopt;
  }
  v1::SubjectRef ref;
  ref.set_kind(kind);
  ref.set_id(std::string(key.substr(slash + 1)));
  return ref;
}

std::string EventContentHash(std::string_view event_bytes, std::string_view signature) {
  const std::string length = base::Be64(event_bytes.size());
  return storage::DigestBytes(storage::Sha256({length, event_bytes, signature}));
}

std::optional<BadEventBytes> ParseEventBytes(std::string_view bytes, v1::Event* event) {
  event->Clear();
  // ParseFromArray fails on truncated input, wrong wire types and invalid
  // UTF-8 in a proto3 string: all of it one answer, the event does not parse.
  if (!event->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    event->Clear();
    ScanEnvelope(bytes, event);
    return BadEventBytes{"event",
                         "the event bytes do not parse as a fieldsync.v1.Event (truncated, a "
                         "wrong wire type, or a string that is not valid UTF-8)"};
  }
  return FindUnknownField(*event, "", 0);
}

bool IsRejectionMarker(const v1::StoredEvent& stored) { return stored.event().empty(); }

bool IsRejectionMarkerPayload(std::string_view payload) {
  // The payload is the server's own encoding (field order of the message):
  // a record with event bytes starts with field 1; a marker never has it.
  namespace wire = google::protobuf::internal;
  if (payload.empty()) return true;
  return static_cast<uint8_t>(payload[0]) !=
         wire::WireFormatLite::MakeTag(v1::StoredEvent::kEventFieldNumber,
                                       wire::WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
}

std::string LogEventId(std::string_view device_id, std::string_view event_id) {
  std::string out;
  out.reserve(device_id.size() + 1 + event_id.size());
  out.append(device_id);
  out.push_back('/');
  out.append(event_id);
  return out;
}

std::string EncodePayload(const v1::StoredEvent& stored) { return DeterministicBytes(stored); }

storage::AppendEntry ToAppendEntry(const v1::StoredEvent& stored, const v1::Event& event) {
  storage::AppendEntry entry;
  entry.event_id = LogEventId(event.device_id(), event.event_id());
  if (event.has_subject()) entry.subject = SubjectKey(event.subject());
  entry.area_code = event.area_code();
  entry.payload = EncodePayload(stored);
  return entry;
}

absl::StatusOr<LoggedEvent> DecodeRecord(const storage::LogRecord& record) {
  LoggedEvent out;
  out.offset_ = record.offset;
  out.prev_hash_ = record.prev_hash;
  out.hash_ = record.hash;
  if (!out.stored.ParseFromString(record.payload)) {
    return absl::DataLossError(absl::StrCat("record ", record.offset, " does not parse"));
  }
  if (!out.stored.event().empty() && !out.parsed.ParseFromString(out.stored.event())) {
    return absl::DataLossError(
        absl::StrCat("the event of record ", record.offset, " does not parse"));
  }
  return out;
}

v1::LogEntry ToLogEntry(const storage::LogRecord& record, bool omit_proofs) {
  v1::LogEntry entry;
  entry.set_offset(record.offset);
  if (!omit_proofs) {
    entry.set_prev_hash(record.prev_hash);
    entry.set_hash(record.hash);
  }
  entry.set_record(record.payload);
  return entry;
}

v1::LogEntry ToLogEntry(storage::LogRecord&& record, bool omit_proofs) {
  v1::LogEntry entry;
  entry.set_offset(record.offset);
  if (!omit_proofs) {
    entry.set_prev_hash(std::move(record.prev_hash));
    entry.set_hash(std::move(record.hash));
  }
  entry.set_record(std::move(record.payload));
  return entry;
}

absl::StatusOr<LoggedEvent> DecodeLogEntry(const v1::LogEntry& entry) {
  LoggedEvent out;
  out.offset_ = entry.offset();
  out.prev_hash_ = entry.prev_hash();
  out.hash_ = entry.hash();
  out.record_ = entry.record();
  if (!out.stored.ParseFromString(entry.record())) {
    return absl::InvalidArgumentError(
        absl::StrCat("the record at offset ", entry.offset(), " does not parse"));
  }
  if (!out.parsed.ParseFromString(out.stored.event())) {
    return absl::InvalidArgumentError(
        absl::StrCat("the event of the record at offset ", entry.offset(), " does not parse"));
  }
  return out;
}

}  // namespace fieldsync::sync
