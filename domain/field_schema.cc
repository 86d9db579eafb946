#include "domain/field_schema.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/text.h"
#include "base/time.h"

namespace fieldsync::domain {
namespace {

constexpr int64_t kMaxMoneyFen = 1'000'000'000'00;  // 1e9 yuan
constexpr int64_t kMaxArea = 100'000'000;           // 1e6 mu or m², in 0.01 units

bool Any(int) { return true; }

const std::vector<FieldSchema>& BuildHouseholdFields() {
  static const auto* fields = new std::vector<FieldSchema>{
      {.name = "head_name", .type = FieldType::kString, .max = 64, .required = true},
      {.name = "head_id_number", .type = FieldType::kIdNumber, .required = true},
      {.name = "location", .type = FieldType::kLocation},
      {.name = "phone", .type = FieldType::kString, .max = 32},
      {.name = "identification_year", .type = FieldType::kInt, .min = 2000, .max = 2100},
      {.name = "standard", .type = FieldType::kEnum, .enum_valid = ValidPovertyStandard,
       .enum_type = &v1::PovertyStandard_descriptor},
      {.name = "attribute", .type = FieldType::kEnum, .enum_valid = ValidHouseholdAttribute,
       .enum_type = &v1::HouseholdAttribute_descriptor},
      {.name = "main_poverty_cause", .type = FieldType::kEnum, .enum_valid = ValidPovertyCause,
       .enum_type = &v1::PovertyCause_descriptor},
      {.name = "secondary_poverty_causes",
       .type = FieldType::kEnumList,
       .enum_valid = ValidPovertyCause,
       .enum_type = &v1::PovertyCause_descriptor},
      {.name = "planned_exit_year", .type = FieldType::kInt, .min = 2000, .max = 2100},
      // Areas in 0.01 mu (land) and 0.01 m² (housing).
      {.name = "cultivated_land_area", .type = FieldType::kInt, .min = 0, .max = kMaxArea},
      {.name = "forest_land_area", .type = FieldType::kInt, .min = 0, .max = kMaxArea},
      {.name = "housing_area", .type = FieldType::kInt, .min = 0, .max = kMaxArea},
      {.name = "housing_structure", .type = FieldType::kString, .max = 64},
      {.name = "housing_danger_grade", .type = FieldType::kString, .max = 8},
      {.name = "safe_drinking_water", .type = FieldType::kBool},
      {.name = "electricity", .type = FieldType::kBool},
      {.name = "income_per_head_fen", .type = FieldType::kInt, .min = 0, .max = kMaxMoneyFen},
      {.name = "relocated", .type = FieldType::kBool},
      {.name = "notes", .type = FieldType::kString, .max = 4000},
  };
  return *fields;
}

const std::vector<FieldSchema>& BuildMemberFields() {
  static const auto* fields = new std::vector<FieldSchema>{
      {.name = "name", .type = FieldType::kString, .max = 64, .required = true},
      {.name = "id_number", .type = FieldType::kIdNumber},
      {.name = "relation",
       .type = FieldType::kEnum,
       .enum_valid = ValidMemberRelation,
       .required = true,
       .enum_type = &v1::MemberRelation_descriptor},
      {.name = "birth_date", .type = FieldType::kDate},
      {.name = "gender", .type = FieldType::kString, .max = 16},
      {.name = "education", .type = FieldType::kString, .max = 64},
      {.name = "health", .type = FieldType::kString, .max = 64},
      {.name = "disability", .type = FieldType::kString, .max = 64},
      {.name = "labour_skills", .type = FieldType::kStringList, .max = 64},
      {.name = "labour_status", .type = FieldType::kString, .max = 64},
      {.name = "in_school", .type = FieldType::kBool},
      {.name = "medical_insurance", .type = FieldType::kBool},
      {.name = "pension_insurance", .type = FieldType::kBool},
      {.name = "phone", .type = FieldType::kString, .max = 32},
  };
  return *fields;
}

const FieldSchema* Find(const std::vector<FieldSchema>& fields, std::string_view name) {
  for (const FieldSchema& f : fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

sync::Rejection Invalid(const std::string& path, std::string message) {
  return sync::Rejection{v1::REJECTION_CODE_INVALID_VALUE, path, std::move(message)};
}

}  // namespace

bool ValidPovertyCause(int v) { return v != 0 && v1::PovertyCause_IsValid(v); }
bool ValidHouseholdAttribute(int v) { return v != 0 && v1::HouseholdAttribute_IsValid(v); }
bool ValidPovertyStandard(int v) { return v != 0 && v1::PovertyStandard_IsValid(v); }
bool ValidMemberRelation(int v) { return v != 0 && v1::MemberRelation_IsValid(v); }

const std::vector<FieldSchema>& HouseholdFields() { return BuildHouseholdFields(); }
const std::vector<FieldSchema>& MemberFields() { return BuildMemberFields(); }
namespace {

v1::FieldType PublishedType(FieldType type) {
  switch (type) {
    case FieldType::kString:
      return v1::FIELD_TYPE_STRING;
    case FieldType::kInt:
      return v1::FIELD_TYPE_INT;
    case FieldType::kEnum:
      return v1::FIELD_TYPE_ENUM;
    case FieldType::kBool:
      return v1::FIELD_TYPE_BOOL;
    case FieldType::kStringList:
      return v1::FIELD_TYPE_STRING_LIST;
    case FieldType::kEnumList:
      return v1::FIELD_TYPE_ENUM_LIST;
    case FieldType::kDate:
      return v1::FIELD_TYPE_DATE;
    case FieldType::kLocation:
      return v1::FIELD_TYPE_LOCATION;
    case FieldType::kIdNumber:
      return v1::FIELD_TYPE_ID_NUMBER;
  }
  return v1::FIELD_TYPE_UNSPECIFIED;
}

void Publish(const FieldSchema& field, v1::FieldSpec* out) {
  out->set_name(std::string(field.name));
  out->set_type(PublishedType(field.type));
  out->set_required(field.required);
  switch (field.type) {
    case FieldType::kInt:
      out->set_min(field.min);
      out->set_max(field.max);
      break;
    case FieldType::kString:
    case FieldType::kStringList:
      out->set_max_length(static_cast<uint32_t>(field.max));
      break;
    case FieldType::kEnum:
    case FieldType::kEnumList:
      if (field.enum_type != nullptr) {
        const google::protobuf::EnumDescriptor* type = field.enum_type();
        out->set_enum_type(type->full_name());
        // The values the check accepts, so the published list and the
        // server's judgement cannot disagree.
        for (int i = 0; i < type->value_count(); ++i) {
          const google::protobuf::EnumValueDescriptor* value = type->value(i);
          if (field.enum_valid == nullptr || !field.enum_valid(value->number())) continue;
          v1::EnumValue* published = out->add_enum_values();
          published->set_number(value->number());
          published->set_name(value->name());
        }
      }
      break;
    default:
      break;
  }
}

}  // namespace

v1::FieldSchemaSet PublishedFieldSchema() {
  v1::FieldSchemaSet schema;
  for (const FieldSchema& field : HouseholdFields()) Publish(field, schema.add_household_fields());
  for (const FieldSchema& field : MemberFields()) Publish(field, schema.add_member_fields());
  return schema;
}

const FieldSchema* HouseholdField(std::string_view name) { return Find(HouseholdFields(), name); }
const FieldSchema* MemberField(std::string_view name) { return Find(MemberFields(), name); }

std::optional<sync::Rejection> CheckFieldValue(const FieldSchema& schema,
                                               const v1::FieldValue& value,
                                               const std::string& path) {
  using V = v1::FieldValue;
  const std::string name(schema.name);
  if (value.value_case() == V::VALUE_NOT_SET) {
    if (schema.required) return Invalid(path, absl::StrCat(name, " cannot be cleared"));
    return std::nullopt;
  }
  auto wrong_type = [&]() { return Invalid(path, absl::StrCat("wrong value type for ", name)); };
  switch (schema.type) {
    case FieldType::kString:
      if (value.value_case() != V::kStringValue) return wrong_type();
      if (!base::IsCleanText(value.string_value(), static_cast<size_t>(schema.max),
                             schema.max > 256)) {
        return Invalid(path, absl::StrCat(name, " must be 1..", schema.max, " bytes of text"));
      }
      return std::nullopt;
    case FieldType::kIdNumber:
      if (value.value_case() != V::kStringValue) return wrong_type();
      if (!IsResidentIdNumber(value.string_value())) {
        return Invalid(path, absl::StrCat(name, " is not a valid resident ID number"));
      }
      return std::nullopt;
    case FieldType::kInt:
      if (value.value_case() != V::kIntValue) return wrong_type();
      if (value.int_value() < schema.min || value.int_value() > schema.max) {
        return Invalid(path,
                       absl::StrCat(name, " must be within [", schema.min, ", ", schema.max, "]"));
      }
      return std::nullopt;
    case FieldType::kEnum:
      if (value.value_case() != V::kIntValue) return wrong_type();
      if (value.int_value() > INT32_MAX || value.int_value() < INT32_MIN ||
          !(schema.enum_valid ? schema.enum_valid : Any)(static_cast<int>(value.int_value()))) {
        return Invalid(path, absl::StrCat("unknown code ", value.int_value(), " for ", name));
      }
      return std::nullopt;
    case FieldType::kEnumList: {
      if (value.value_case() != V::kIntList) return wrong_type();
      if (value.int_list().values_size() > 16) return Invalid(path, "too many codes");
      std::vector<int64_t> seen;
      for (int64_t code : value.int_list().values()) {
        if (code > INT32_MAX || code < INT32_MIN ||
            !(schema.enum_valid ? schema.enum_valid : Any)(static_cast<int>(code))) {
          return Invalid(path, absl::StrCat("unknown code ", code, " for ", name));
        }
        if (std::find(seen.begin(), seen.end(), code) != seen.end()) {
          return Invalid(path, absl::StrCat("code ", code, " repeated in ", name));
        }
        seen.push_back(code);
      }
      return std::nullopt;
    }
    case FieldType::kBool:
      if (value.value_case() != V::kBoolValue) return wrong_type();
      return std::nullopt;
    case FieldType::kStringList:
      if (value.value_case() != V::kStringList) return wrong_type();
      if (value.string_list().values_size() > 32) return Invalid(path, "too many values");
      for (const std::string& s : value.string_list().values()) {
        if (!base::IsCleanText(s, static_cast<size_t>(schema.max))) {
          return Invalid(path, absl::StrCat("each value of ", name, " must be 1..", schema.max,
                                            " bytes of text"));
        }
      }
      return std::nullopt;
    case FieldType::kDate:
      if (value.value_case() != V::kDateValue) return wrong_type();
      if (!IsValidDate(value.date_value())) return Invalid(path, "not a valid date");
      return std::nullopt;
    case FieldType::kLocation:
      if (value.value_case() != V::kLocationValue) return wrong_type();
      return CheckLocation(value.location_value(), path);
  }
  return wrong_type();
}

char ResidentIdCheckChar(std::string_view first17) {
  static constexpr int kWeights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
  static constexpr char kChecks[11] = {'1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'};
  int sum = 0;
  for (size_t i = 0; i < 17 && i < first17.size(); ++i) sum += (first17[i] - '0') * kWeights[i];
  return kChecks[sum % 11];
}

bool IsResidentIdNumber(std::string_view s) {
  if (s.size() != 18) return false;
  for (size_t i = 0; i < 17; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return s[17] == ResidentIdCheckChar(s.substr(0, 17));
}

bool IsValidDate(const v1::Date& date) {
  return base::IsValidCalendarDate(date.year(), date.month(), date.day(), kMinDateYear,
                                   kMaxDateYear);
}

std::optional<sync::Rejection> CheckLocation(const v1::Location& location,
                                             const std::string& path) {
  if (!std::isfinite(location.lat()) || location.lat() < -90 || location.lat() > 90) {
    return Invalid(path, "latitude must be within [-90, 90]");
  }
  if (!std::isfinite(location.lng()) || location.lng() < -180 || location.lng() > 180) {
    return Invalid(path, "longitude must be within [-180, 180]");
  }
  if (!std::isfinite(location.accuracy_m()) || location.accuracy_m() < 0) {
    return Invalid(path, "accuracy must be a non-negative number");
  }
  if (location.has_fix_time() && !base::IsValidTimestamp(location.fix_time())) {
    return Invalid(path, "fix_time out of range");
  }
  return std::nullopt;
}

}  // namespace fieldsync::domain
