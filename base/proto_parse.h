// Parsing protobuf messages we stored ourselves: bytes that do not parse are
// corruption on our side (DATA_LOSS), never a client error.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace fieldsync::base {

// `bytes` parsed as an M; DATA_LOSS "projection <key> does not parse" if
// they do not (`key` names where the bytes were stored).
template <typename M>
absl::StatusOr<M> ParseStored(std::string_view key, std::string_view bytes) {
  M message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("projection ", std::string(key), " does not parse"));
  }
  return message;
}

// As ParseStored, for a value that may be absent: nullopt stays nullopt.
template <typename M>
absl::StatusOr<std::optional<M>> ParseStoredOptional(std::string_view key,
                                                     const std::optional<std::string>& bytes) {
  if (!bytes.has_value()) return std::optional<M>();
  absl::StatusOr<M> message = ParseStored<M>(key, *bytes);
  if (!message.ok()) return message.status();
  return std::optional<M>(*std::move(message));
}

}  // namespace fieldsync::base
