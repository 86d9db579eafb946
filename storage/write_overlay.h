// Projection writes not stored yet, on top of what is: the committer's
// overlays (one per request, group and group in flight) and the engine's
// BufferedView share the one rule of how such writes hide stored entries,
// here, for Get and for CommitContext::Nearest.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace fieldsync::storage {

// Writes by key; nullopt marks a delete.
using WriteOverlay = std::map<std::string, std::optional<std::string>, std::less<>>;

// The entry of `overlay` nearest `cursor` (strictly beyond it, in the
// direction) among the keys starting with `prefix`, deletes included; null if
// none.
const WriteOverlay::value_type* OverlayNearest(const WriteOverlay& overlay, std::string_view prefix,
                                               std::string_view cursor, bool forward);

using NearestEntry = std::optional<std::pair<std::string, std::string>>;

// CommitContext::Nearest of `overlay` laid over `below` (Nearest of the
// entries the overlay hides, called with the same prefix and direction from
// a cursor).
absl::StatusOr<NearestEntry> NearestThrough(
    const WriteOverlay& overlay, std::string_view prefix, std::string_view key, bool forward,
    absl::FunctionRef<absl::StatusOr<NearestEntry>(std::string_view cursor)> below);

}  // namespace fieldsync::storage
