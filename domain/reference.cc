#include "domain/reference.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "domain/domain_keys.h"
#include "base/status_macros.h"

namespace fieldsync::domain {
namespace {

template <typename Message>
absl::StatusOr<std::optional<Message>> Find(const sync::ProjectionReader& reader,
                                            const std::string& key) {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes, reader.Get(key));
  if (!bytes) return std::optional<Message>();
  Message message;
  if (!message.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("projection ", key, " does not parse"));
  }
  return std::optional<Message>(std::move(message));
}

}  // namespace

absl::StatusOr<std::optional<v1::Area>> FindArea(const sync::ProjectionReader& reader,
                                                 std::string_view code) {
  return Find<v1::Area>(reader, keys::Area(code));
}

absl::StatusOr<std::optional<v1::Unit>> FindUnit(const sync::ProjectionReader& reader,
                                                 std::string_view id) {
  return Find<v1::Unit>(reader, keys::Unit(id));
}

absl::StatusOr<std::optional<v1::User>> FindUser(const sync::ProjectionReader& reader,
                                                 std::string_view id) {
  return Find<v1::User>(reader, keys::User(id));
}

absl::Status AppendAreaChain(const sync::ProjectionReader& reader, std::string_view code,
                             google::protobuf::RepeatedPtrField<v1::Area>* out) {
  std::string next(code);
  for (int level = 0; level < 8 && !next.empty(); ++level) {
    ASSIGN_OR_RETURN(std::optional<v1::Area> area, FindArea(reader, next));
    if (!area) break;
    next = area->parent_code();
    *out->Add() = *std::move(area);
  }
  return absl::OkStatus();
}

std::string_view IdOfNameEntry(std::string_view key) {
  const size_t nul = key.rfind('\0');
  return nul == std::string_view::npos ? key : key.substr(nul + 1);
}

}  // namespace fieldsync::domain
