// ShuanglianPolicy: the stateless checks (Validate, references). See
// shuanglian_policy.h.
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/text.h"
#include "base/time.h"
#include "domain/field_schema.h"
#include "domain/links.h"
#include "domain/shuanglian_policy.h"
#include "domain/status_machine.h"
#include "google/protobuf/util/time_util.h"

namespace fieldsync::domain {
namespace {

using sync::Rejection;
using Reason = std::optional<Rejection>;

constexpr size_t kShortText = 200;
constexpr size_t kLongText = 8000;
constexpr int kMaxPhotos = 20;
constexpr int kMaxPatches = 64;
constexpr int kMaxPlanItems = 200;
constexpr int kMaxEvidence = 50;

Rejection Malformed(std::string field, std::string message) {
  return Rejection{v1::REJECTION_CODE_MALFORMED, std::move(field), std::move(message)};
}
Rejection Invalid(std::string field, std::string message) {
  return Rejection{v1::REJECTION_CODE_INVALID_VALUE, std::move(field), std::move(message)};
}
Rejection Mismatch(std::string message) {
  return Rejection{v1::REJECTION_CODE_SUBJECT_MISMATCH, "subject", std::move(message)};
}
Rejection Denied(std::string message) {
  return Rejection{v1::REJECTION_CODE_PERMISSION_DENIED, "", std::move(message)};
}

std::string At(std::string_view path, int index) {
  return absl::StrCat(std::string(path), "[", index, "]");
}

bool IsFieldRole(v1::Role role) {
  return role == v1::ROLE_CADRE || role == v1::ROLE_TOWNSHIP_STAFF || role == v1::ROLE_COUNTY_STAFF;
}

Reason RequireText(const std::string& value, const std::string& field, size_t max,
                   bool multiline = false) {
  if (value.empty()) return Malformed(field, absl::StrCat(field, " is required"));
  if (!base::IsCleanText(value, max, multiline)) {
    return Invalid(field, absl::StrCat(field, " must be 1..", max, " bytes of text"));
  }
  return std::nullopt;
}

Reason OptionalText(const std::string& value, const std::string& field, size_t max) {
  if (value.empty()) return std::nullopt;
  return RequireText(value, field, max, true);
}

Reason CheckShas(const google::protobuf::RepeatedPtrField<std::string>& shas,
                 const std::string& field, int max) {
  if (shas.size() > max) return Invalid(field, absl::StrCat("at most ", max, " references"));
  for (int i = 0; i < shas.size(); ++i) {
    if (shas[i].size() != 32) return Invalid(At(field, i), "a SHA-256 is 32 bytes");
  }
  return std::nullopt;
}

Reason CheckEventIds(const google::protobuf::RepeatedPtrField<std::string>& ids,
                     const std::string& field) {
  if (ids.size() > kMaxEvidence) {
    return Invalid(field, absl::StrCat("at most ", kMaxEvidence, " references"));
  }
  for (int i = 0; i < ids.size(); ++i) {
    if (!base::IsUuid(ids[i])) return Invalid(At(field, i), "not an event id");
  }
  return std::nullopt;
}

Reason CheckTimestamp(const v1::Event&, bool has, const google::protobuf::Timestamp& t,
                      const std::string& field) {
  if (!has) return Malformed(field, absl::StrCat(field, " is required"));
  if (!base::IsValidTimestamp(t)) return Invalid(field, absl::StrCat(field, " out of range"));
  return std::nullopt;
}

// --- Number and date bounds (DomainOptions, config.proto ValidationConfig) ---

// A money amount of one value: 0..options.max_amount_fen.
Reason CheckAmount(int64_t amount_fen, const std::string& field, const DomainOptions& options) {
  if (amount_fen < 0) return Invalid(field, absl::StrCat(field, " is negative"));
  if (amount_fen > options.max_amount_fen) {
    return Invalid(field, absl::StrCat(field, " ", amount_fen, " fen is over the bound of ",
                                       options.max_amount_fen, " fen (validation.max_amount_fen)"));
  }
  return std::nullopt;
}

std::string YearBound(const DomainOptions& options) {
  return absl::StrCat("within the years ", options.min_year, "..", options.max_year,
                      " (validation.min_year, validation.max_year)");
}

// A calendar year within the window.
Reason CheckYear(int64_t year, const std::string& field, const DomainOptions& options) {
  if (year < options.min_year || year > options.max_year) {
    return Invalid(field, absl::StrCat(field, " ", year, " is not ", YearBound(options)));
  }
  return std::nullopt;
}

// A valid calendar date (CheckDate) whose year is within the window.
Reason CheckDateInWindow(const v1::Date& date, const std::string& field,
                         const DomainOptions& options) {
  if (date.year() < options.min_year || date.year() > options.max_year) {
    return Invalid(field, absl::StrCat(field, " ", date.year(), "-", date.month(), "-", date.day(),
                                       " is not ", YearBound(options)));
  }
  return std::nullopt;
}

// A valid timestamp (IsValidTimestamp) within the window, in China Standard
// Time: from min_year-01-01 00:00 to the end of max_year.
Reason CheckTimeInWindow(const google::protobuf::Timestamp& t, const std::string& field,
                         const DomainOptions& options) {
  const absl::TimeZone cst = absl::FixedTimeZone(8 * 3600);
  const absl::Time time = absl::FromUnixSeconds(t.seconds());
  const absl::Time from = absl::FromCivil(absl::CivilYear(options.min_year), cst);
  const absl::Time to = absl::FromCivil(absl::CivilYear(int64_t{options.max_year} + 1), cst);
  if (time < from || time >= to) {
    return Invalid(field, absl::StrCat(field, " ", absl::FormatTime("%Y-%m-%d", time, cst),
                                       " is not ", YearBound(options)));
  }
  return std::nullopt;
}

Reason CheckSubjectKind(const v1::Event& event, std::initializer_list<v1::SubjectKind> kinds) {
  for (v1::SubjectKind kind : kinds) {
    if (event.subject().kind() == kind) {
      // Villages and areas are their own area code.
      if ((kind == v1::SUBJECT_KIND_VILLAGE || kind == v1::SUBJECT_KIND_AREA) &&
          event.subject().id() != event.area_code()) {
        return Mismatch("a village or area subject's id must equal area_code");
      }
      return std::nullopt;
    }
  }
  return Mismatch(absl::StrCat("subject kind ", v1::SubjectKind_Name(event.subject().kind()),
                               " does not fit this body"));
}

Reason CheckVisit(const v1::VisitRecorded& visit, const std::string& path,
                  const DomainOptions& options) {
  using google::protobuf::util::TimeUtil;
  const v1::Event none;
  if (auto r = CheckTimestamp(none, visit.has_start_time(), visit.start_time(),
                              absl::StrCat(path, ".start_time"))) {
    return r;
  }
  if (auto r = CheckTimestamp(none, visit.has_end_time(), visit.end_time(),
                              absl::StrCat(path, ".end_time"))) {
    return r;
  }
  const int64_t start = TimeUtil::TimestampToMilliseconds(visit.start_time());
  const int64_t end = TimeUtil::TimestampToMilliseconds(visit.end_time());
  if (end < start) return Invalid(absl::StrCat(path, ".end_time"), "end_time is before start_time");
  if (end - start > absl::ToInt64Milliseconds(options.max_visit_duration)) {
    return Invalid(
        absl::StrCat(path, ".end_time"),
        absl::StrCat("a visit lasts at most ", absl::FormatDuration(options.max_visit_duration)));
  }
  if (auto r = CheckTimeInWindow(visit.start_time(), absl::StrCat(path, ".start_time"), options)) {
    return r;
  }
  if (auto r = CheckTimeInWindow(visit.end_time(), absl::StrCat(path, ".end_time"), options)) {
    return r;
  }
  if (visit.purpose() == v1::VISIT_PURPOSE_UNSPECIFIED) {
    return Malformed(absl::StrCat(path, ".purpose"), "purpose is required");
  }
  if (!v1::VisitPurpose_IsValid(visit.purpose())) {
    return Invalid(absl::StrCat(path, ".purpose"), "unknown visit purpose");
  }
  if (visit.purpose() == v1::VISIT_PURPOSE_OTHER) {
    if (auto r =
            RequireText(visit.purpose_note(), absl::StrCat(path, ".purpose_note"), kShortText)) {
      return r;
    }
  } else if (auto r = OptionalText(visit.purpose_note(), absl::StrCat(path, ".purpose_note"),
                                   kShortText)) {
    return r;
  }
  if (auto r = OptionalText(visit.notes(), absl::StrCat(path, ".notes"), kLongText)) return r;
  if (auto r = CheckShas(visit.photo_sha256(), absl::StrCat(path, ".photo_sha256"), kMaxPhotos)) {
    return r;
  }
  if (visit.household_confirmed()) {
    if (auto r = RequireText(visit.confirmer_name(), absl::StrCat(path, ".confirmer_name"), 64)) {
      return r;
    }
  }
  if (!visit.confirmation_photo_sha256().empty() &&
      visit.confirmation_photo_sha256().size() != 32) {
    return Invalid(absl::StrCat(path, ".confirmation_photo_sha256"), "a SHA-256 is 32 bytes");
  }
  return std::nullopt;
}

Reason CheckPatches(const google::protobuf::RepeatedPtrField<v1::FieldPatch>& patches,
                    const std::string& path, const FieldSchema* (*lookup)(std::string_view)) {
  if (patches.empty()) return Malformed(path, "at least one patch is required");
  if (patches.size() > kMaxPatches) {
    return Invalid(path, absl::StrCat("at most ", kMaxPatches, " patches"));
  }
  std::set<std::string> seen;
  for (int i = 0; i < patches.size(); ++i) {
    const v1::FieldPatch& patch = patches[i];
    const std::string at = At(path, i);
    if (patch.field().empty()) return Malformed(absl::StrCat(at, ".field"), "field is required");
    const FieldSchema* schema = lookup(patch.field());
    if (schema == nullptr) {
      return Rejection{v1::REJECTION_CODE_UNKNOWN_FIELD, absl::StrCat(at, ".field"),
                       absl::StrCat("no field named '", patch.field(), "'")};
    }
    if (!seen.insert(patch.field()).second) {
      return Invalid(absl::StrCat(at, ".field"), "a field may be patched once per event");
    }
    if (auto r = CheckFieldValue(*schema, patch.value(), absl::StrCat(at, ".value"))) return r;
  }
  return std::nullopt;
}

Reason CheckInitialFields(const google::protobuf::Map<std::string, v1::FieldValue>& fields,
                          const std::string& path, const FieldSchema* (*lookup)(std::string_view),
                          std::initializer_list<std::string_view> reserved) {
  if (fields.size() > kMaxPatches) return Invalid(path, "too many fields");
  for (const auto& [name, value] : fields) {
    const std::string at = absl::StrCat(path, "[", name, "]");
    for (std::string_view r : reserved) {
      if (name == r) return Invalid(at, absl::StrCat(name, " is set by the body's own field"));
    }
    const FieldSchema* schema = lookup(name);
    if (schema == nullptr) {
      return Rejection{v1::REJECTION_CODE_UNKNOWN_FIELD, at,
                       absl::StrCat("no field named '", name, "'")};
    }
    if (auto r = CheckFieldValue(*schema, value, at)) return r;
  }
  return std::nullopt;
}

Reason CheckStatusPair(v1::HouseholdStatus from, v1::HouseholdStatus to, v1::MonitoringType type,
                       const std::string& path) {
  if (from == v1::HOUSEHOLD_STATUS_UNSPECIFIED) {
    return Malformed(absl::StrCat(path, ".from_status"), "from_status is required");
  }
  if (to == v1::HOUSEHOLD_STATUS_UNSPECIFIED) {
    return Malformed(absl::StrCat(path, ".to_status"), "to_status is required");
  }
  if (!v1::HouseholdStatus_IsValid(from)) {
    return Invalid(absl::StrCat(path, ".from_status"), "unknown status");
  }
  if (!v1::HouseholdStatus_IsValid(to)) {
    return Invalid(absl::StrCat(path, ".to_status"), "unknown status");
  }
  if (!v1::MonitoringType_IsValid(type)) {
    return Invalid(absl::StrCat(path, ".monitoring_type"), "unknown monitoring type");
  }
  if ((to == v1::HOUSEHOLD_STATUS_MONITORED) != (type != v1::MONITORING_TYPE_UNSPECIFIED)) {
    return Invalid(absl::StrCat(path, ".monitoring_type"),
                   "monitoring_type is required with MONITORED and only with it");
  }
  if (ClassifyTransition(from, to) == TransitionKind::kInvalid) {
    return Rejection{
        v1::REJECTION_CODE_INVALID_TRANSITION, absl::StrCat(path, ".to_status"),
        absl::StrCat(v1::HouseholdStatus_Name(from), " -> ", v1::HouseholdStatus_Name(to),
                     " is not a transition of the state machine")};
  }
  return std::nullopt;
}

Reason CheckDate(bool has, const v1::Date& date, const std::string& field) {
  if (!has) return Malformed(field, absl::StrCat(field, " is required"));
  if (!IsValidDate(date)) return Invalid(field, "not a valid date");
  return std::nullopt;
}

// Which holder and target kinds a link role takes (links.h FitLinkRole, the
// rule AdminService applies too).
Reason CheckLinkRole(v1::LinkRole role, bool cadre, v1::SubjectKind target) {
  const LinkRoleFit fit = FitLinkRole(role, cadre, target);
  if (!fit.known_role) return Invalid("link_started.role", "unknown link role");
  if (!fit.holder_fits) return Invalid("link_started.role", "the role does not fit the holder");
  if (!fit.target_fits) return Mismatch("the link role does not fit the target");
  return std::nullopt;
}

std::string PlanIdFor(const v1::Event& event, const v1::PlanRevised& plan) {
  std::string id = absl::StrCat(event.subject().id(), "/", plan.year());
  if (plan.kind() == v1::PLAN_KIND_UNIT) absl::StrAppend(&id, "/", plan.unit_id());
  return id;
}

Reason ValidateBody(const v1::Event& event, const sync::Author& author,
                    const DomainOptions& options) {
  using B = v1::Event;
  const v1::Role role = author.role;
  switch (event.body_case()) {
    case B::kVisitRecorded: {
      if (!IsFieldRole(role)) return Denied("only field roles record visits");
      if (auto r =
              CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD, v1::SUBJECT_KIND_VILLAGE})) {
        return r;
      }
      return CheckVisit(event.visit_recorded(), "visit_recorded", options);
    }
    case B::kVisitCorrected: {
      const v1::VisitCorrected& c = event.visit_corrected();
      if (!IsFieldRole(role)) return Denied("only field roles correct visits");
      if (auto r =
              CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD, v1::SUBJECT_KIND_VILLAGE})) {
        return r;
      }
      if (!base::IsUuid(c.original_event_id())) {
        return Malformed("visit_corrected.original_event_id", "original_event_id is required");
      }
      if (auto r = RequireText(c.reason(), "visit_corrected.reason", kShortText, true)) return r;
      if (c.withdrawn() == c.has_corrected()) {
        return Malformed("visit_corrected.corrected",
                         "exactly one of corrected and withdrawn is required");
      }
      if (c.has_corrected()) return CheckVisit(c.corrected(), "visit_corrected.corrected", options);
      return std::nullopt;
    }
    case B::kHouseholdRegistered: {
      const v1::HouseholdRegistered& h = event.household_registered();
      if (!IsFieldRole(role)) return Denied("only field roles register households");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD})) return r;
      if (!base::IsUuid(event.subject().id())) {
        return Invalid("subject.id", "a new household's id is a client-made UUID");
      }
      if (h.household_number().empty()) {
        return Malformed("household_registered.household_number", "household_number is required");
      }
      if (!base::IsPlainId(h.household_number()) || h.household_number().size() > 32) {
        return Invalid("household_registered.household_number",
                       "household_number must be 1..32 of [A-Za-z0-9._:-]");
      }
      if (auto r = RequireText(h.head_name(), "household_registered.head_name", 64)) return r;
      if (h.head_id_number().empty()) {
        return Malformed("household_registered.head_id_number", "head_id_number is required");
      }
      if (!IsResidentIdNumber(h.head_id_number())) {
        return Invalid("household_registered.head_id_number", "not a valid resident ID number");
      }
      if (h.has_location()) {
        if (auto r = CheckLocation(h.location(), "household_registered.location")) return r;
      }
      if (auto r = CheckInitialFields(h.fields(), "household_registered.fields", HouseholdField,
                                      {"head_name", "head_id_number", "location"})) {
        return r;
      }
      if (!v1::HouseholdStatus_IsValid(h.initial_status()) ||
          h.initial_status() == v1::HOUSEHOLD_STATUS_CANCELLED) {
        return Invalid("household_registered.initial_status", "not a valid initial status");
      }
      if (h.initial_status() != v1::HOUSEHOLD_STATUS_UNSPECIFIED &&
          h.initial_status() != v1::HOUSEHOLD_STATUS_IDENTIFIED && role != v1::ROLE_COUNTY_STAFF) {
        return Denied("only county staff import households in a later status");
      }
      if (!v1::MonitoringType_IsValid(h.monitoring_type()) ||
          ((h.initial_status() == v1::HOUSEHOLD_STATUS_MONITORED) !=
           (h.monitoring_type() != v1::MONITORING_TYPE_UNSPECIFIED))) {
        return Invalid("household_registered.monitoring_type",
                       "monitoring_type is required with MONITORED and only with it");
      }
      return std::nullopt;
    }
    case B::kHouseholdFieldsSet:
      if (!IsFieldRole(role)) return Denied("only field roles edit households");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD})) return r;
      return CheckPatches(event.household_fields_set().patches(), "household_fields_set.patches",
                          HouseholdField);
    case B::kMemberAdded: {
      const v1::MemberAdded& m = event.member_added();
      if (!IsFieldRole(role)) return Denied("only field roles edit households");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD})) return r;
      if (!base::IsUuid(m.member_id())) {
        return Malformed("member_added.member_id", "member_id (a UUID) is required");
      }
      if (auto r = RequireText(m.name(), "member_added.name", 64)) return r;
      if (!m.id_number().empty() && !IsResidentIdNumber(m.id_number())) {
        return Invalid("member_added.id_number", "not a valid resident ID number");
      }
      if (m.relation() == v1::MEMBER_RELATION_UNSPECIFIED) {
        return Malformed("member_added.relation", "relation is required");
      }
      if (!v1::MemberRelation_IsValid(m.relation())) {
        return Invalid("member_added.relation", "unknown relation");
      }
      return CheckInitialFields(m.fields(), "member_added.fields", MemberField,
                                {"name", "id_number", "relation"});
    }
    case B::kMemberUpdated:
      if (!IsFieldRole(role)) return Denied("only field roles edit households");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD})) return r;
      if (!base::IsUuid(event.member_updated().member_id())) {
        return Malformed("member_updated.member_id", "member_id is required");
      }
      return CheckPatches(event.member_updated().patches(), "member_updated.patches", MemberField);
    case B::kMemberRemoved: {
      const v1::MemberRemoved& m = event.member_removed();
      if (!IsFieldRole(role)) return Denied("only field roles edit households");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD})) return r;
      if (!base::IsUuid(m.member_id()))
        return Malformed("member_removed.member_id", "member_id is required");
      if (m.reason() == v1::MEMBER_REMOVAL_REASON_UNSPECIFIED) {
        return Malformed("member_removed.reason", "reason is required");
      }
      if (!v1::MemberRemovalReason_IsValid(m.reason())) {
        return Invalid("member_removed.reason", "unknown reason");
      }
      if (m.reason() == v1::MEMBER_REMOVAL_REASON_OTHER) {
        return RequireText(m.note(), "member_removed.note", kShortText, true);
      }
      return OptionalText(m.note(), "member_removed.note", kShortText);
    }
    case B::kStatusChangeProposed: {
      const v1::StatusChangeProposed& p = event.status_change_proposed();
      // A proposal by a role that may not propose is a conflict, not a
      // rejection (status rules make conflicts); no role at all is denied.
      if (role == v1::ROLE_UNSPECIFIED) return Denied("no role");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD})) return r;
      if (auto r = CheckStatusPair(p.from_status(), p.to_status(), p.monitoring_type(),
                                   "status_change_proposed")) {
        return r;
      }
      if (auto r = RequireText(p.reason(), "status_change_proposed.reason", kLongText, true)) {
        return r;
      }
      if (auto r =
              CheckEventIds(p.evidence_event_ids(), "status_change_proposed.evidence_event_ids")) {
        return r;
      }
      return CheckShas(p.evidence_photo_sha256(), "status_change_proposed.evidence_photo_sha256",
                       kMaxEvidence);
    }
    case B::kStatusChangeConfirmed: {
      const v1::StatusChangeConfirmed& c = event.status_change_confirmed();
      if (role == v1::ROLE_UNSPECIFIED) return Denied("no role");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD})) return r;
      if (auto r = CheckStatusPair(c.from_status(), c.to_status(), c.monitoring_type(),
                                   "status_change_confirmed")) {
        return r;
      }
      if (c.stage() == v1::REVIEW_STAGE_UNSPECIFIED) {
        return Malformed("status_change_confirmed.stage", "stage is required");
      }
      if (!v1::ReviewStage_IsValid(c.stage())) {
        return Invalid("status_change_confirmed.stage", "unknown review stage");
      }
      if (c.decision() == v1::REVIEW_DECISION_UNSPECIFIED) {
        return Malformed("status_change_confirmed.decision", "decision is required");
      }
      if (!v1::ReviewDecision_IsValid(c.decision())) {
        return Invalid("status_change_confirmed.decision", "unknown decision");
      }
      if (c.decision() == v1::REVIEW_DECISION_REJECT) {
        if (auto r = RequireText(c.note(), "status_change_confirmed.note", kLongText, true)) {
          return r;
        }
      } else if (auto r = OptionalText(c.note(), "status_change_confirmed.note", kLongText)) {
        return r;
      }
      if (!c.proposal_event_id().empty() && !base::IsUuid(c.proposal_event_id())) {
        return Invalid("status_change_confirmed.proposal_event_id", "not an event id");
      }
      if (c.proposal_event_id().empty() && c.stage() == v1::REVIEW_STAGE_TOWNSHIP_AUDIT) {
        return Invalid("status_change_confirmed.proposal_event_id",
                       "a township audit is of a proposal");
      }
      return std::nullopt;
    }
    case B::kPlanRevised: {
      const v1::PlanRevised& p = event.plan_revised();
      if (!IsFieldRole(role)) return Denied("only field roles revise plans");
      if (p.kind() == v1::PLAN_KIND_UNSPECIFIED) {
        return Malformed("plan_revised.kind", "kind is required");
      }
      if (!v1::PlanKind_IsValid(p.kind())) return Invalid("plan_revised.kind", "unknown plan kind");
      if (auto r = CheckSubjectKind(
              event, {p.kind() == v1::PLAN_KIND_HOUSEHOLD_EXIT ? v1::SUBJECT_KIND_HOUSEHOLD
                                                               : v1::SUBJECT_KIND_VILLAGE})) {
        return r;
      }
      if ((p.kind() == v1::PLAN_KIND_UNIT) != !p.unit_id().empty()) {
        return Invalid("plan_revised.unit_id", "unit_id is required for unit plans and only them");
      }
      if (!p.unit_id().empty() && !base::IsPlainId(p.unit_id())) {
        return Invalid("plan_revised.unit_id", "not a unit id");
      }
      if (auto r = CheckYear(p.year(), "plan_revised.year", options)) return r;
      if (p.plan_id().empty()) return Malformed("plan_revised.plan_id", "plan_id is required");
      if (p.plan_id() != PlanIdFor(event, p)) {
        return Invalid("plan_revised.plan_id",
                       absl::StrCat("plan_id must be '", PlanIdFor(event, p), "'"));
      }
      if (p.items_size() > kMaxPlanItems) {
        return Invalid("plan_revised.items", absl::StrCat("at most ", kMaxPlanItems, " items"));
      }
      std::set<std::string> ids;
      for (int i = 0; i < p.items_size(); ++i) {
        const v1::PlanItem& item = p.items(i);
        const std::string at = At("plan_revised.items", i);
        if (!base::IsPlainId(item.item_id())) {
          return Malformed(absl::StrCat(at, ".item_id"), "item_id is required");
        }
        if (!ids.insert(item.item_id()).second) {
          return Invalid(absl::StrCat(at, ".item_id"), "item ids are unique in a plan");
        }
        if (item.category() == v1::MEASURE_CATEGORY_UNSPECIFIED ||
            !v1::MeasureCategory_IsValid(item.category())) {
          return Invalid(absl::StrCat(at, ".category"), "unknown measure category");
        }
        if (auto r = RequireText(item.content(), absl::StrCat(at, ".content"), kLongText, true)) {
          return r;
        }
        if (auto r = CheckAmount(item.cost_fen(), absl::StrCat(at, ".cost_fen"), options)) {
          return r;
        }
        if (auto r = CheckYear(item.year(), absl::StrCat(at, ".year"), options)) return r;
      }
      return OptionalText(p.note(), "plan_revised.note", kLongText);
    }
    case B::kMeasureDelivered: {
      const v1::MeasureDelivered& m = event.measure_delivered();
      if (!IsFieldRole(role)) return Denied("only field roles deliver measures");
      if (auto r =
              CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD, v1::SUBJECT_KIND_VILLAGE})) {
        return r;
      }
      if (m.plan_id().empty()) return Malformed("measure_delivered.plan_id", "plan_id is required");
      if (!base::IsPlainId(m.item_id()))
        return Malformed("measure_delivered.item_id", "item_id is required");
      if (auto r = CheckAmount(m.amount_fen(), "measure_delivered.amount_fen", options)) return r;
      if (auto r =
              CheckDate(m.has_delivered_on(), m.delivered_on(), "measure_delivered.delivered_on")) {
        return r;
      }
      if (auto r = CheckDateInWindow(m.delivered_on(), "measure_delivered.delivered_on", options)) {
        return r;
      }
      if (auto r = OptionalText(m.note(), "measure_delivered.note", kLongText)) return r;
      return CheckShas(m.evidence_sha256(), "measure_delivered.evidence_sha256", kMaxEvidence);
    }
    case B::kIncomeObserved: {
      const v1::IncomeObserved& o = event.income_observed();
      if (!IsFieldRole(role)) return Denied("only field roles observe incomes");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD})) return r;
      if (auto r = CheckYear(o.year(), "income_observed.year", options)) return r;
      if (o.period() == v1::INCOME_PERIOD_UNSPECIFIED) {
        return Malformed("income_observed.period", "period is required");
      }
      int max_index = 0;
      switch (o.period()) {
        case v1::INCOME_PERIOD_YEAR:
          max_index = 0;
          break;
        case v1::INCOME_PERIOD_HALF_YEAR:
          max_index = 2;
          break;
        case v1::INCOME_PERIOD_QUARTER:
          max_index = 4;
          break;
        case v1::INCOME_PERIOD_MONTH:
          max_index = 12;
          break;
        default:
          return Invalid("income_observed.period", "unknown period");
      }
      if ((max_index == 0 && o.period_index() != 0) ||
          (max_index > 0 && (o.period_index() < 1 || o.period_index() > max_index))) {
        return Invalid("income_observed.period_index", "period_index out of range for the period");
      }
      if (o.category() == v1::INCOME_CATEGORY_UNSPECIFIED) {
        return Malformed("income_observed.category", "category is required");
      }
      if (!v1::IncomeCategory_IsValid(o.category())) {
        return Invalid("income_observed.category", "unknown category");
      }
      if (auto r = CheckAmount(o.amount_fen(), "income_observed.amount_fen", options)) return r;
      if (!o.member_id().empty() && !base::IsUuid(o.member_id())) {
        return Invalid("income_observed.member_id", "not a member id");
      }
      return OptionalText(o.note(), "income_observed.note", kLongText);
    }
    case B::kLinkStarted: {
      const v1::LinkStarted& l = event.link_started();
      if (role != v1::ROLE_COUNTY_STAFF) return Denied("links are managed by county staff");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD, v1::SUBJECT_KIND_VILLAGE,
                                            v1::SUBJECT_KIND_AREA})) {
        return r;
      }
      if (!base::IsUuid(l.link_id()))
        return Malformed("link_started.link_id", "link_id is required");
      if (l.holder_case() == v1::LinkStarted::HOLDER_NOT_SET) {
        return Malformed("link_started.holder", "cadre_id or unit_id is required");
      }
      const bool cadre = l.holder_case() == v1::LinkStarted::kCadreId;
      if (!base::IsPlainId(cadre ? l.cadre_id() : l.unit_id())) {
        return Invalid(cadre ? "link_started.cadre_id" : "link_started.unit_id", "not an id");
      }
      if (l.role() == v1::LINK_ROLE_UNSPECIFIED) {
        return Malformed("link_started.role", "role is required");
      }
      if (auto r = CheckLinkRole(l.role(), cadre, event.subject().kind())) return r;
      if (auto r = CheckDate(l.has_valid_from(), l.valid_from(), "link_started.valid_from"))
        return r;
      if (!l.replaces_link_id().empty()) {
        // Links AdminService made have ids of the admin grammar, not UUIDs.
        if (!base::IsPlainId(l.replaces_link_id())) {
          return Invalid("link_started.replaces_link_id", "not a link id");
        }
        if (l.replaces_link_id() == l.link_id()) {
          return Invalid("link_started.replaces_link_id", "a link cannot replace itself");
        }
        return RequireText(l.reason(), "link_started.reason", kShortText, true);
      }
      return OptionalText(l.reason(), "link_started.reason", kShortText);
    }
    case B::kLinkEnded: {
      const v1::LinkEnded& l = event.link_ended();
      if (role != v1::ROLE_COUNTY_STAFF) return Denied("links are managed by county staff");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD, v1::SUBJECT_KIND_VILLAGE,
                                            v1::SUBJECT_KIND_AREA})) {
        return r;
      }
      // Any link can be ended, AdminService's (ids of the admin grammar,
      // [A-Za-z0-9._:-]{1,64}) as well as pushed ones (UUIDs).
      if (l.link_id().empty()) return Malformed("link_ended.link_id", "link_id is required");
      if (!base::IsPlainId(l.link_id())) return Invalid("link_ended.link_id", "not a link id");
      if (auto r = CheckDate(l.has_valid_to(), l.valid_to(), "link_ended.valid_to")) return r;
      if (l.reason() == v1::LINK_END_REASON_UNSPECIFIED) {
        return Malformed("link_ended.reason", "reason is required");
      }
      if (!v1::LinkEndReason_IsValid(l.reason()))
        return Invalid("link_ended.reason", "unknown reason");
      if (l.reason() == v1::LINK_END_REASON_OTHER) {
        return RequireText(l.note(), "link_ended.note", kShortText, true);
      }
      return OptionalText(l.note(), "link_ended.note", kShortText);
    }
    case B::kConflictResolved: {
      const v1::ConflictResolved& c = event.conflict_resolved();
      if (role != v1::ROLE_TOWNSHIP_STAFF && role != v1::ROLE_COUNTY_STAFF) {
        return Denied("conflicts are resolved by township or county staff");
      }
      if (auto r =
              CheckSubjectKind(event, {v1::SUBJECT_KIND_HOUSEHOLD, v1::SUBJECT_KIND_VILLAGE})) {
        return r;
      }
      if (c.conflict_id().empty() || c.conflict_id().size() > 64) {
        return Malformed("conflict_resolved.conflict_id", "conflict_id is required");
      }
      switch (c.resolution_case()) {
        case v1::ConflictResolved::RESOLUTION_NOT_SET:
          return Malformed("conflict_resolved.resolution", "a resolution is required");
        case v1::ConflictResolved::kStatus:
          if (c.status() == v1::HOUSEHOLD_STATUS_UNSPECIFIED ||
              !v1::HouseholdStatus_IsValid(c.status()) ||
              c.status() == v1::HOUSEHOLD_STATUS_MONITORED) {
            return Invalid("conflict_resolved.status",
                           "not a status a resolution sets (MONITORED needs chosen_side)");
          }
          break;
        default:
          break;
      }
      return OptionalText(c.note(), "conflict_resolved.note", kLongText);
    }
    case B::kFeedbackFiled: {
      const v1::FeedbackFiled& f = event.feedback_filed();
      if (role == v1::ROLE_UNSPECIFIED || role == v1::ROLE_ADMIN) return Denied("not a field role");
      if (auto r = CheckSubjectKind(event, {v1::SUBJECT_KIND_AREA, v1::SUBJECT_KIND_VILLAGE})) {
        return r;
      }
      if (!base::IsPlainId(f.from_unit_id())) {
        return Malformed("feedback_filed.from_unit_id", "from_unit_id is required");
      }
      // A unit speaks through its own people: the author's unit, never another.
      if (author.unit_id.empty()) {
        return Rejection{
            v1::REJECTION_CODE_PERMISSION_DENIED, "feedback_filed.from_unit_id",
            absl::StrCat("user ", author.actor, " belongs to no unit and cannot file feedback")};
      }
      if (f.from_unit_id() != author.unit_id) {
        return Rejection{v1::REJECTION_CODE_PERMISSION_DENIED, "feedback_filed.from_unit_id",
                         absl::StrCat("from_unit_id ", f.from_unit_id(), " is not the unit ",
                                      author.unit_id, " of the author ", author.actor)};
      }
      if (f.kind() == v1::FEEDBACK_KIND_UNSPECIFIED) {
        return Malformed("feedback_filed.kind", "kind is required");
      }
      if (!v1::FeedbackKind_IsValid(f.kind()))
        return Invalid("feedback_filed.kind", "unknown kind");
      if (auto r = RequireText(f.title(), "feedback_filed.title", kShortText)) return r;
      if (auto r = RequireText(f.content(), "feedback_filed.content", kLongText, true)) return r;
      return CheckShas(f.attachment_sha256(), "feedback_filed.attachment_sha256", kMaxEvidence);
    }
    case B::kInspectionRecorded: {
      const v1::InspectionRecorded& i = event.inspection_recorded();
      if (role != v1::ROLE_TOWNSHIP_STAFF && role != v1::ROLE_COUNTY_STAFF &&
          role != v1::ROLE_HQ_ANALYST) {
        return Denied("inspections are recorded by township, county or HQ staff");
      }
      if (auto r = CheckSubjectKind(
              event, {v1::SUBJECT_KIND_HOUSEHOLD, v1::SUBJECT_KIND_VILLAGE, v1::SUBJECT_KIND_AREA,
                      v1::SUBJECT_KIND_UNIT, v1::SUBJECT_KIND_CADRE})) {
        return r;
      }
      if (!i.inspector_user_id().empty() && !base::IsPlainId(i.inspector_user_id())) {
        return Invalid("inspection_recorded.inspector_user_id", "not a user id");
      }
      // An inspector with an account records their own inspections.
      if (!i.inspector_user_id().empty() && i.inspector_user_id() != author.actor) {
        return Rejection{v1::REJECTION_CODE_PERMISSION_DENIED,
                         "inspection_recorded.inspector_user_id",
                         absl::StrCat("inspector_user_id ", i.inspector_user_id(),
                                      " is not the author ", author.actor)};
      }
      if (auto r = RequireText(i.inspector_name(), "inspection_recorded.inspector_name", 64)) {
        return r;
      }
      if (auto r = RequireText(i.findings(), "inspection_recorded.findings", kLongText, true)) {
        return r;
      }
      for (int k = 0; k < i.flags_size(); ++k) {
        if (i.flags(k) == v1::INSPECTION_FLAG_UNSPECIFIED ||
            !v1::InspectionFlag_IsValid(i.flags(k))) {
          return Invalid(At("inspection_recorded.flags", k), "unknown flag");
        }
      }
      if (auto r = CheckEventIds(i.event_ids(), "inspection_recorded.event_ids")) return r;
      if (i.result() == v1::INSPECTION_RESULT_UNSPECIFIED) {
        return Malformed("inspection_recorded.result", "result is required");
      }
      if (!v1::InspectionResult_IsValid(i.result())) {
        return Invalid("inspection_recorded.result", "unknown result");
      }
      return CheckShas(i.evidence_sha256(), "inspection_recorded.evidence_sha256", kMaxEvidence);
    }
    case B::kAreaImported:
    case B::kUnitUpserted:
    case B::kUserUpserted:
    case B::kDeviceEnrolled:
    case B::kDeviceRevoked:
    case B::kEnrollmentCodeIssued:
      return Denied("admin bodies are made by the server, never pushed");
    case B::BODY_NOT_SET:
      return Malformed("body", "no body this server knows");
  }
  return Malformed("body", "no body this server knows");
}

}  // namespace

bool ShuanglianPolicy::IsInsertOnly(v1::Event::BodyCase body) const {
  switch (body) {
    case v1::Event::kVisitRecorded:
    case v1::Event::kVisitCorrected:
    case v1::Event::kMeasureDelivered:
    case v1::Event::kIncomeObserved:
    case v1::Event::kFeedbackFiled:
    case v1::Event::kInspectionRecorded:
      return true;
    default:
      return false;
  }
}

std::optional<sync::Rejection> ShuanglianPolicy::Validate(const v1::Event& event,
                                                          const sync::Author& author) const {
  return ValidateBody(event, author, options_);
}

sync::References ShuanglianPolicy::ReferencesOf(const v1::Event& event) const {
  sync::References refs;
  auto blobs = [&refs](const google::protobuf::RepeatedPtrField<std::string>& shas,
                       const std::string& field) {
    for (int i = 0; i < shas.size(); ++i) refs.blobs.push_back({At(field, i), shas[i]});
  };
  auto visit_blobs = [&](const v1::VisitRecorded& visit, const std::string& path) {
    blobs(visit.photo_sha256(), absl::StrCat(path, ".photo_sha256"));
    if (!visit.confirmation_photo_sha256().empty()) {
      refs.blobs.push_back(
          {absl::StrCat(path, ".confirmation_photo_sha256"), visit.confirmation_photo_sha256()});
    }
  };
  switch (event.body_case()) {
    case v1::Event::kVisitRecorded:
      visit_blobs(event.visit_recorded(), "visit_recorded");
      break;
    case v1::Event::kVisitCorrected:
      refs.events.push_back(
          {"visit_corrected.original_event_id", event.visit_corrected().original_event_id(), true});
      if (event.visit_corrected().has_corrected()) {
        visit_blobs(event.visit_corrected().corrected(), "visit_corrected.corrected");
      }
      break;
    case v1::Event::kStatusChangeProposed: {
      const auto& p = event.status_change_proposed();
      for (int i = 0; i < p.evidence_event_ids_size(); ++i) {
        refs.events.push_back(
            {At("status_change_proposed.evidence_event_ids", i), p.evidence_event_ids(i), false});
      }
      blobs(p.evidence_photo_sha256(), "status_change_proposed.evidence_photo_sha256");
      break;
    }
    case v1::Event::kStatusChangeConfirmed:
      if (!event.status_change_confirmed().proposal_event_id().empty()) {
        refs.events.push_back({"status_change_confirmed.proposal_event_id",
                               event.status_change_confirmed().proposal_event_id(), true});
      }
      break;
    case v1::Event::kMeasureDelivered:
      blobs(event.measure_delivered().evidence_sha256(), "measure_delivered.evidence_sha256");
      break;
    case v1::Event::kFeedbackFiled:
      blobs(event.feedback_filed().attachment_sha256(), "feedback_filed.attachment_sha256");
      break;
    case v1::Event::kInspectionRecorded: {
      const auto& i = event.inspection_recorded();
      for (int k = 0; k < i.event_ids_size(); ++k) {
        refs.events.push_back({At("inspection_recorded.event_ids", k), i.event_ids(k), false});
      }
      blobs(i.evidence_sha256(), "inspection_recorded.evidence_sha256");
      break;
    }
    default:
      break;
  }
  return refs;
}

std::optional<sync::Rejection> ShuanglianPolicy::CheckReference(
    const v1::Event& event, const sync::Author& author, const sync::References::EventRef& ref,
    const v1::Event& referenced, std::string_view referenced_actor) const {
  const bool same_subject = referenced.subject().kind() == event.subject().kind() &&
                            referenced.subject().id() == event.subject().id();
  switch (event.body_case()) {
    case v1::Event::kVisitCorrected:
      if (referenced.body_case() != v1::Event::kVisitRecorded) {
        return Rejection{v1::REJECTION_CODE_UNKNOWN_REFERENCE, ref.field,
                         "the original is not a recorded visit"};
      }
      if (!same_subject) return Mismatch("a correction has the subject of its original visit");
      // A visit is its author's record: only they correct or withdraw it
      // (from any of their devices); a supervisor who doubts it records an
      // inspection instead.
      if (referenced_actor != author.actor) {
        return Rejection{v1::REJECTION_CODE_PERMISSION_DENIED, ref.field,
                         absl::StrCat("the visit was recorded by ", std::string(referenced_actor),
                                      "; a visit is corrected only by its author (supervisors "
                                      "record an inspection)")};
      }
      return std::nullopt;
    case v1::Event::kStatusChangeConfirmed:
      if (referenced.body_case() != v1::Event::kStatusChangeProposed) {
        return Rejection{v1::REJECTION_CODE_UNKNOWN_REFERENCE, ref.field,
                         "the referenced event is not a status proposal"};
      }
      if (!same_subject) return Mismatch("a decision has the subject of its proposal");
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

}  // namespace fieldsync::domain
