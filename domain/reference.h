// Reference data of the 雙聯 model: admin areas, units and users (with their
// role, rank, unit, area codes and disabled flag). The domain's projections
// (domain_keys.h "dom/area/", "dom/unit/", "dom/user/" and the name indexes)
// are the only record of each: the server's AreaImported, UnitUpserted and
// UserUpserted events are folded by the domain's Merge in their own commit
// (reference_merge.cc), and every reader (links, scopes, the server's
// directory and AdminService lists) reads them here. The server keeps only
// identity secrets of its own (tokens, enrollment codes, device credentials).
//
// Reads of committed projections; thread-safe.
#pragma once

#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "fieldsync/v1/state.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "sync/merge_policy.h"

namespace fieldsync::domain {

// The area with code `code`, the unit, the user; nullopt if none. DataLoss
// for a record that does not parse.
absl::StatusOr<std::optional<v1::Area>> FindArea(const sync::ProjectionReader& reader,
                                                 std::string_view code);
absl::StatusOr<std::optional<v1::Unit>> FindUnit(const sync::ProjectionReader& reader,
                                                 std::string_view id);
absl::StatusOr<std::optional<v1::User>> FindUser(const sync::ProjectionReader& reader,
                                                 std::string_view id);

// The id in an entry of a name index (keys::kUserNamePrefix,
// keys::kUnitNamePrefix): what follows the last NUL of its key.
std::string_view IdOfNameEntry(std::string_view key);

// Appends the area `code` and its ancestors (by parent_code, nearest first)
// to `out`, as far as they are known; at most 8 levels, so a corrupt parent
// cycle ends. Errors: the store's, DataLoss.
absl::Status AppendAreaChain(const sync::ProjectionReader& reader, std::string_view code,
                             google::protobuf::RepeatedPtrField<v1::Area>* out);

}  // namespace fieldsync::domain
