#include "sync/event_codec.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "storage/sha256.h"

namespace fieldsync::sync {
namespace {

std::string Deterministic(const google::protobuf::MessageLite& message) {
  return DeterministicBytes(message);
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

std::string EventContentHash(const v1::Event& event) {
  return storage::DigestBytes(storage::Sha256({Deterministic(event)}));
}

bool IsRejectionMarker(const v1::StoredEvent& stored) {
  return stored.event().body_case() == v1::Event::BODY_NOT_SET;
}

std::string CanonicalEventBytes(const v1::Event& event) {
  v1::Event copy = event;
  copy.clear_signature();
  return Deterministic(copy);
}

std::string LogEventId(std::string_view device_id, std::string_view event_id) {
  std::string out;
  out.reserve(device_id.size() + 1 + event_id.size());
  out.append(device_id);
  out.push_back('/');
  out.append(event_id);
  return out;
}

std::string EncodePayload(const v1::StoredEvent& stored) {
  v1::StoredEvent copy = stored;
  copy.clear_offset();
  copy.clear_prev_hash();
  copy.clear_hash();
  return Deterministic(copy);
}

storage::AppendEntry ToAppendEntry(const v1::StoredEvent& stored) {
  storage::AppendEntry entry;
  entry.event_id = LogEventId(stored.event().device_id(), stored.event().event_id());
  if (stored.event().has_subject()) entry.subject = SubjectKey(stored.event().subject());
  entry.area_code = stored.event().area_code();
  entry.payload = EncodePayload(stored);
  return entry;
}

absl::StatusOr<v1::StoredEvent> DecodeRecord(const storage::LogRecord& record) {
  v1::StoredEvent stored;
  if (!stored.ParseFromString(record.payload)) {
    return absl::DataLossError(absl::StrCat("record ", record.offset, " does not parse"));
  }
  stored.set_offset(record.offset);
  stored.set_prev_hash(record.prev_hash);
  stored.set_hash(record.hash);
  return stored;
}

}  // namespace fieldsync::sync
