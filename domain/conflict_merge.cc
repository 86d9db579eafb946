// ConflictResolved: a human decision closes a conflict and sets the value.
// The first resolution wins; later ones are rejected ALREADY_DECIDED.
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "domain/body_merges.h"
#include "domain/domain_keys.h"
#include "domain/field_schema.h"
#include "domain/status_machine.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {
namespace {

constexpr char kField[] = "conflict_resolved";

// The value a field or plan resolution sets, or nullopt after rejecting.
std::optional<v1::ConflictSide> ChosenSide(MergeContext& mc, const v1::Conflict& conflict) {
  const v1::ConflictResolved& body = mc.event().conflict_resolved();
  if (body.chosen_side() >= static_cast<uint32_t>(conflict.sides_size())) {
    mc.Reject(v1::REJECTION_CODE_INVALID_VALUE, absl::StrCat(kField, ".chosen_side"),
              absl::StrCat("the conflict has ", conflict.sides_size(), " sides"));
    return std::nullopt;
  }
  return conflict.sides(static_cast<int>(body.chosen_side()));
}

absl::Status ResolveField(MergeContext& mc, const v1::Conflict& conflict, v1::Household& h,
                          bool* household_changed) {
  const v1::ConflictResolved& body = mc.event().conflict_resolved();
  v1::FieldValue value;
  switch (body.resolution_case()) {
    case v1::ConflictResolved::kChosenSide: {
      std::optional<v1::ConflictSide> side = ChosenSide(mc, conflict);
      if (!side) return absl::OkStatus();
      value = side->field_value();
      break;
    }
    case v1::ConflictResolved::kValue:
      value = body.value();
      break;
    default:
      mc.Reject(v1::REJECTION_CODE_INVALID_VALUE, absl::StrCat(kField, ".status"),
                "a field conflict is resolved by a side or a value");
      return absl::OkStatus();
  }
  const bool member = conflict.subject().kind() == v1::SUBJECT_KIND_MEMBER;
  const FieldSchema* schema =
      member ? MemberField(conflict.field()) : HouseholdField(conflict.field());
  if (schema == nullptr) return absl::DataLossError("a conflict names an unknown field");
  if (auto r = CheckFieldValue(*schema, value, absl::StrCat(kField, ".value"))) {
    mc.Reject(r->code, r->field, r->message);
    return absl::OkStatus();
  }
  const std::string owner = sync::SubjectKey(mc.event().subject());
  const std::string entity_key = sync::SubjectKey(conflict.subject());
  uint64_t version = 0;
  if (member) {
    ASSIGN_OR_RETURN(std::optional<v1::Member> m,
                     mc.Load<v1::Member>(keys::Member(owner, conflict.subject().id())));
    if (!m) return absl::DataLossError("a conflict's member is missing");
    auto it = m->fields().find(conflict.field());
    version = (it == m->fields().end() ? 0 : it->second.version()) + 1;
    SetMemberField(*m, conflict.field(), mc.VersionedByEvent(value, version));
    m->set_version(m->version() + 1);
    m->set_last_offset(mc.meta().offset);
    mc.Save(keys::Member(owner, m->id()), *m);
  } else {
    auto it = h.fields().find(conflict.field());
    version = (it == h.fields().end() ? 0 : it->second.version()) + 1;
    SetHouseholdField(h, conflict.field(), mc.VersionedByEvent(value, version));
  }
  h.set_version(h.version() + 1);
  *household_changed = true;
  v1::ConflictSide holder = mc.SideOfEvent();
  *holder.mutable_field_value() = value;
  mc.Save(keys::FieldHolder(entity_key, conflict.field()), holder);
  v1::WriteOutcome out;
  *out.mutable_entity() = conflict.subject();
  out.set_field(conflict.field());
  out.set_version(version);
  out.set_result(v1::WRITE_RESULT_APPLIED);
  // The body names a side, not the value: the outcome carries it, so a
  // client replays the resolution from the pulled event alone.
  *out.mutable_field_value() = value;
  mc.result().writes.push_back(std::move(out));
  return absl::OkStatus();
}

absl::Status ResolvePlan(MergeContext& mc, const v1::Conflict& conflict) {
  const v1::ConflictResolved& body = mc.event().conflict_resolved();
  if (body.resolution_case() != v1::ConflictResolved::kChosenSide) {
    mc.Reject(v1::REJECTION_CODE_INVALID_VALUE, absl::StrCat(kField, ".chosen_side"),
              "a plan conflict is resolved by choosing a side");
    return absl::OkStatus();
  }
  std::optional<v1::ConflictSide> side = ChosenSide(mc, conflict);
  if (!side) return absl::OkStatus();
  const std::string owner = sync::SubjectKey(mc.event().subject());
  ASSIGN_OR_RETURN(std::optional<v1::Plan> plan,
                   mc.Load<v1::Plan>(keys::Plan(owner, conflict.subject().id())));
  if (!plan) return absl::DataLossError("a conflict's plan is missing");
  *plan->mutable_items() = side->plan().items();
  plan->set_version(plan->version() + 1);
  plan->set_hlc(mc.meta().adopted_hlc);
  plan->set_last_offset(mc.meta().offset);
  mc.Save(keys::Plan(owner, plan->id()), *plan);
  v1::ConflictSide holder = mc.SideOfEvent();
  *holder.mutable_plan() = side->plan();
  mc.Save(keys::FieldHolder(sync::SubjectKey(conflict.subject()), "items"), holder);
  v1::WriteOutcome out;
  *out.mutable_entity() = conflict.subject();
  out.set_field("items");
  out.set_version(plan->version());
  out.set_result(v1::WRITE_RESULT_APPLIED);
  *out.mutable_plan() = side->plan();
  mc.result().writes.push_back(std::move(out));
  return absl::OkStatus();
}

absl::Status ResolveStatus(MergeContext& mc, const v1::Conflict& conflict, v1::Household& h,
                           bool* household_changed) {
  const v1::ConflictResolved& body = mc.event().conflict_resolved();
  if (!MayResolveStatus(mc.meta().author.role)) {
    mc.Reject(v1::REJECTION_CODE_PERMISSION_DENIED, "",
              "status conflicts are resolved by county staff");
    return absl::OkStatus();
  }
  v1::HouseholdStatus to;
  v1::MonitoringType type = v1::MONITORING_TYPE_UNSPECIFIED;
  switch (body.resolution_case()) {
    case v1::ConflictResolved::kStatus:
      to = body.status();
      break;
    case v1::ConflictResolved::kChosenSide: {
      std::optional<v1::ConflictSide> side = ChosenSide(mc, conflict);
      if (!side) return absl::OkStatus();
      to = side->status().to_status();
      type = side->status().monitoring_type();
      break;
    }
    default:
      mc.Reject(v1::REJECTION_CODE_INVALID_VALUE, absl::StrCat(kField, ".value"),
                "a status conflict is resolved by a side or a status");
      return absl::OkStatus();
  }
  if (to != h.status() || type != h.monitoring_type()) {
    const v1::HouseholdStatus from = h.status();
    RETURN_IF_ERROR(ApplyStatus(mc, h, to, type));
    *household_changed = true;
    // ApplyStatus recorded the "status" write last: it carries the status
    // set (a chosen side names it only through the conflict).
    if (!mc.result().writes.empty() && mc.result().writes.back().field() == "status") {
      v1::StatusTransition* set = mc.result().writes.back().mutable_status();
      set->set_from_status(from);
      set->set_to_status(h.status());
      set->set_monitoring_type(h.monitoring_type());
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status MergeConflictResolved(MergeContext& mc) {
  const v1::Event& event = mc.event();
  const v1::ConflictResolved& body = event.conflict_resolved();
  ASSIGN_OR_RETURN(std::optional<v1::Conflict> conflict,
                   mc.Load<v1::Conflict>(keys::Conflict(body.conflict_id())));
  if (!conflict) {
    mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, absl::StrCat(kField, ".conflict_id"),
              "no such conflict");
    return absl::OkStatus();
  }
  if (!conflict->open()) {
    mc.Reject(v1::REJECTION_CODE_ALREADY_DECIDED, absl::StrCat(kField, ".conflict_id"),
              absl::StrCat("the conflict was resolved by ", conflict->resolved_by_event_id()));
    return absl::OkStatus();
  }
  const std::string owner = sync::SubjectKey(event.subject());
  ASSIGN_OR_RETURN(std::optional<std::string> listed,
                   mc.Get(keys::OpenConflict(owner, conflict->id())));
  if (!listed || conflict->area_code() != event.area_code()) {
    mc.Reject(v1::REJECTION_CODE_SUBJECT_MISMATCH, "subject",
              "the conflict belongs to another subject");
    return absl::OkStatus();
  }
  std::optional<v1::Household> h;
  if (event.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
    ASSIGN_OR_RETURN(h, LoadSubjectHousehold(mc));
    if (!h) return absl::OkStatus();
  }
  bool household_changed = false;
  switch (conflict->kind()) {
    case v1::CONFLICT_KIND_FIELD_CONCURRENT:
      if (!h) return absl::DataLossError("a field conflict outside a household");
      RETURN_IF_ERROR(ResolveField(mc, *conflict, *h, &household_changed));
      break;
    case v1::CONFLICT_KIND_PLAN_CONCURRENT:
      RETURN_IF_ERROR(ResolvePlan(mc, *conflict));
      break;
    case v1::CONFLICT_KIND_STATUS_STALE_FROM:
    case v1::CONFLICT_KIND_STATUS_SKIPPED_STEP:
    case v1::CONFLICT_KIND_STATUS_WRONG_ROLE:
      if (!h) return absl::DataLossError("a status conflict outside a household");
      RETURN_IF_ERROR(ResolveStatus(mc, *conflict, *h, &household_changed));
      break;
    default:
      return absl::DataLossError("a conflict of unknown kind");
  }
  if (mc.rejected()) return absl::OkStatus();
  if (conflict->kind() == v1::CONFLICT_KIND_FIELD_CONCURRENT ||
      conflict->kind() == v1::CONFLICT_KIND_PLAN_CONCURRENT) {
    mc.Delete(keys::FieldConflict(sync::SubjectKey(conflict->subject()), conflict->field()));
  }
  conflict->set_open(false);
  conflict->set_resolved_by_event_id(event.event_id());
  conflict->set_resolved_offset(mc.meta().offset);
  conflict->set_resolved_by(mc.meta().author.actor);
  RETURN_IF_ERROR(SaveConflict(mc, *conflict, owner));
  if (h) {
    RemoveOpenConflict(*h, conflict->id());
    h->set_last_offset(mc.meta().offset);
    mc.Save(keys::Household(owner), *h);
  }
  return absl::OkStatus();
}

}  // namespace fieldsync::domain
