// Field schemas of the registry (建檔立卡): which fields a household and a
// member have, which FieldValue variant each takes and which values are
// valid. Patches naming another field are UNKNOWN_FIELD; a value of the wrong
// variant or out of range is INVALID_VALUE.
//
// Also the value checks every body shares (texts, ids, dates, resident ID
// numbers, SHA-256 references). Everything here is pure and thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fieldsync/v1/common.pb.h"
#include "fieldsync/v1/sync_service.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "sync/merge_policy.h"

namespace fieldsync::domain {

enum class FieldType {
  kString,      // string_value
  kInt,         // int_value (counts, money in fen, areas in 0.01 units, years)
  kEnum,        // int_value holding a number of `enum_valid`
  kBool,        // bool_value
  kStringList,  // string_list
  kEnumList,    // int_list of numbers of `enum_valid`
  kDate,        // date_value
  kLocation,    // location_value
  kIdNumber,    // string_value holding a resident ID number (GB 11643)
};

struct FieldSchema {
  std::string_view name;
  FieldType type;
  // Inclusive bounds for kInt; maximum length in bytes for kString.
  int64_t min = 0;
  int64_t max = 0;
  // For kEnum and kEnumList: which numbers are values (0 never is).
  bool (*enum_valid)(int) = nullptr;
  // True if the field may not be cleared (set to no value).
  bool required = false;
  // For kEnum and kEnumList: the enum of common.proto the numbers come from
  // (the published schema lists its values that enum_valid accepts).
  const google::protobuf::EnumDescriptor* (*enum_type)() = nullptr;
};

// The schema of a household field, or nullptr if the household has no such
// field. "head_name", "head_id_number" and "location" are fields too (set by
// HouseholdRegistered, patched like any other).
const FieldSchema* HouseholdField(std::string_view name);
// The schema of a member field ("name", "id_number", "relation" included).
const FieldSchema* MemberField(std::string_view name);
// Every household / member field, for documentation and tests.
const std::vector<FieldSchema>& HouseholdFields();
const std::vector<FieldSchema>& MemberFields();

// The schema as clients read it (SyncService.GetSchema): every household and
// member field, in the order above, with its type, bounds and enum values.
v1::FieldSchemaSet PublishedFieldSchema();

// Checks `value` against `schema`; `path` names the field in a rejection.
// No variant set means "clear the field".
std::optional<sync::Rejection> CheckFieldValue(const FieldSchema& schema,
                                               const v1::FieldValue& value,
                                               const std::string& path);

// --- Shared value checks -------------------------------------------------------
// (UTF-8 text, plain ids, UUIDs and timestamps: base/text.h, base/time.h.)

// An 18-character resident ID number with a valid GB 11643 check character.
bool IsResidentIdNumber(std::string_view s);
// The check character (0-9 or X) of the first 17 digits of an ID number.
char ResidentIdCheckChar(std::string_view first17);
// The years a date in a pushed event may have (birth dates, plan dates):
// the programme's records, not the calendar's range.
inline constexpr int kMinDateYear = 1900;
inline constexpr int kMaxDateYear = 2100;
// A real calendar date between kMinDateYear and kMaxDateYear.
bool IsValidDate(const v1::Date& date);
// Range checks of a GNSS fix.
std::optional<sync::Rejection> CheckLocation(const v1::Location& location, const std::string& path);

// Enum predicates usable as FieldSchema::enum_valid (0 is never valid).
bool ValidPovertyCause(int v);
bool ValidHouseholdAttribute(int v);
bool ValidPovertyStandard(int v);
bool ValidMemberRelation(int v);

}  // namespace fieldsync::domain
