// Households and members: registration, versioned field patches, members,
// and the subject checks of insert-only bodies.
#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "domain/body_merges.h"
#include "domain/domain_keys.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {
namespace {

v1::SubjectRef Ref(v1::SubjectKind kind, const std::string& id) {
  v1::SubjectRef ref;
  ref.set_kind(kind);
  ref.set_id(id);
  return ref;
}

v1::WriteOutcome Outcome(const v1::SubjectRef& entity, const std::string& field, uint64_t version,
                         v1::WriteResult result, const std::string& conflict_id = "") {
  v1::WriteOutcome out;
  *out.mutable_entity() = entity;
  out.set_field(field);
  out.set_version(version);
  out.set_result(result);
  out.set_conflict_id(conflict_id);
  return out;
}

v1::FieldValue StringValue(const std::string& s) {
  v1::FieldValue v;
  v.set_string_value(s);
  return v;
}

v1::FieldValue IntValue(int64_t i) {
  v1::FieldValue v;
  v.set_int_value(i);
  return v;
}

// The side that set a field when its entity was created (no aux record).
absl::StatusOr<std::optional<v1::ConflictSide>> CreationSide(MergeContext& mc,
                                                             const std::string& entity_key,
                                                             const v1::VersionedValue* current) {
  if (current == nullptr || current->version() == 0) return std::optional<v1::ConflictSide>();
  ASSIGN_OR_RETURN(std::optional<std::string> created, mc.Get(keys::Created(entity_key)));
  v1::ConflictSide side;
  side.set_event_id(created.value_or(""));
  side.set_offset(current->offset());
  side.set_device_id(current->device_id());
  side.set_actor(current->actor());
  side.set_hlc(current->hlc());
  *side.mutable_field_value() = current->value();
  return std::optional<v1::ConflictSide>(std::move(side));
}

// Applies a list of patches to `fields` of `entity` through Contend.
// `changed` tells whether any value changed; `opened` collects new conflicts.
absl::Status ApplyPatches(MergeContext& mc, const v1::SubjectRef& entity,
                          const std::string& area_code, const std::string& owner_key,
                          const google::protobuf::RepeatedPtrField<v1::FieldPatch>& patches,
                          google::protobuf::Map<std::string, v1::VersionedValue>* fields,
                          bool* changed, std::vector<std::string>* opened,
                          std::vector<std::pair<std::string, v1::VersionedValue>>* applied) {
  const std::string entity_key = sync::SubjectKey(entity);
  for (const v1::FieldPatch& patch : patches) {
    auto it = fields->find(patch.field());
    const v1::VersionedValue* current = it == fields->end() ? nullptr : &it->second;
    const uint64_t version = current ? current->version() : 0;
    Contest contest;
    contest.kind = v1::CONFLICT_KIND_FIELD_CONCURRENT;
    contest.entity = entity;
    contest.field = patch.field();
    contest.area_code = area_code;
    contest.owner_key = owner_key;
    contest.current_version = version;
    contest.base_version = patch.base_version();
    ASSIGN_OR_RETURN(contest.implicit_holder, CreationSide(mc, entity_key, current));
    contest.incoming = mc.SideOfEvent();
    *contest.incoming.mutable_field_value() = patch.value();
    ASSIGN_OR_RETURN(ContestResult decided, Contend(mc, contest));
    uint64_t now_version = version;
    if (decided.apply) {
      now_version = version + 1;
      v1::VersionedValue value = mc.VersionedByEvent(patch.value(), now_version);
      (*fields)[patch.field()] = value;
      applied->emplace_back(patch.field(), std::move(value));
      *changed = true;
    }
    if (decided.opened) opened->push_back(decided.conflict_id);
    mc.result().writes.push_back(
        Outcome(entity, patch.field(), now_version, decided.result, decided.conflict_id));
  }
  return absl::OkStatus();
}

}  // namespace

void SetHouseholdField(v1::Household& household, const std::string& field,
                       const v1::VersionedValue& value) {
  (*household.mutable_fields())[field] = value;
  if (field == "head_name") household.set_head_name(value.value().string_value());
  if (field == "location") {
    if (value.value().has_location_value()) {
      *household.mutable_location() = value.value().location_value();
    } else {
      household.clear_location();
    }
  }
}

void SetMemberField(v1::Member& member, const std::string& field, const v1::VersionedValue& value) {
  (*member.mutable_fields())[field] = value;
  if (field == "name") member.set_name(value.value().string_value());
  if (field == "relation") {
    member.set_relation(static_cast<v1::MemberRelation>(value.value().int_value()));
  }
}

absl::StatusOr<std::optional<v1::Household>> LoadSubjectHousehold(MergeContext& mc) {
  const v1::Event& event = mc.event();
  const std::string key = sync::SubjectKey(event.subject());
  ASSIGN_OR_RETURN(std::optional<v1::Household> household,
                   mc.Load<v1::Household>(keys::Household(key)));
  if (!household) {
    mc.Reject(v1::REJECTION_CODE_UNKNOWN_SUBJECT, "subject",
              absl::StrCat("household ", event.subject().id(), " is not registered"));
    return std::optional<v1::Household>();
  }
  if (household->village_code() != event.area_code()) {
    mc.Reject(v1::REJECTION_CODE_SUBJECT_MISMATCH, "area_code",
              absl::StrCat("the household lives in ", household->village_code()));
    return std::optional<v1::Household>();
  }
  return household;
}

absl::Status MergeHouseholdRegistered(MergeContext& mc) {
  const v1::Event& event = mc.event();
  const v1::HouseholdRegistered& body = event.household_registered();
  const std::string& id = event.subject().id();
  const std::string key = sync::SubjectKey(event.subject());
  ASSIGN_OR_RETURN(std::optional<std::string> existing, mc.Get(keys::HouseholdVillage(id)));
  if (existing) {
    mc.Reject(v1::REJECTION_CODE_SUBJECT_EXISTS, "subject", "the household is already registered");
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::optional<std::string> numbered,
                   mc.Get(keys::HouseholdNumber(body.household_number())));
  if (numbered) {
    mc.Reject(
        v1::REJECTION_CODE_SUBJECT_EXISTS, "household_registered.household_number",
        absl::StrCat("household number ", body.household_number(), " is taken by ", *numbered));
    return absl::OkStatus();
  }
  const uint64_t offset = mc.meta().offset;
  const v1::SubjectRef entity = Ref(v1::SUBJECT_KIND_HOUSEHOLD, id);
  v1::Household h;
  h.set_id(id);
  h.set_household_number(body.household_number());
  h.set_village_code(event.area_code());
  h.set_status(body.initial_status() == v1::HOUSEHOLD_STATUS_UNSPECIFIED
                   ? v1::HOUSEHOLD_STATUS_IDENTIFIED
                   : body.initial_status());
  h.set_status_version(1);
  h.set_monitoring_type(body.monitoring_type());
  h.set_version(1);
  h.set_first_offset(offset);
  h.set_last_offset(offset);
  *h.mutable_status_changed_at() = mc.ReceivedAt();

  std::vector<std::pair<std::string, v1::FieldValue>> initial;
  initial.emplace_back("head_name", StringValue(body.head_name()));
  initial.emplace_back("head_id_number", StringValue(body.head_id_number()));
  if (body.has_location()) {
    v1::FieldValue location;
    *location.mutable_location_value() = body.location();
    initial.emplace_back("location", std::move(location));
  }
  // Map order is unspecified; sort so the writes list is deterministic.
  std::vector<std::pair<std::string, v1::FieldValue>> extra(body.fields().begin(),
                                                            body.fields().end());
  std::sort(extra.begin(), extra.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  initial.insert(initial.end(), extra.begin(), extra.end());
  for (const auto& [field, value] : initial) {
    SetHouseholdField(h, field, mc.VersionedByEvent(value, 1));
    mc.result().writes.push_back(Outcome(entity, field, 1, v1::WRITE_RESULT_APPLIED));
  }
  mc.result().writes.push_back(Outcome(entity, "status", 1, v1::WRITE_RESULT_APPLIED));

  v1::ConflictSide standing = mc.SideOfEvent();
  standing.mutable_status()->set_from_status(v1::HOUSEHOLD_STATUS_UNSPECIFIED);
  standing.mutable_status()->set_to_status(h.status());
  standing.mutable_status()->set_monitoring_type(h.monitoring_type());

  mc.Save(keys::Household(key), h);
  mc.Save(keys::StatusHolder(id), standing);
  mc.Put(keys::HouseholdVillage(id), event.area_code());
  mc.Put(keys::HouseholdNumber(body.household_number()), id);
  mc.Put(keys::HouseholdArea(event.area_code(), body.household_number()), id);
  mc.Put(keys::Created(key), event.event_id());
  return absl::OkStatus();
}

absl::Status MergeHouseholdFieldsSet(MergeContext& mc) {
  ASSIGN_OR_RETURN(std::optional<v1::Household> h, LoadSubjectHousehold(mc));
  if (!h) return absl::OkStatus();
  const std::string key = sync::SubjectKey(mc.event().subject());
  bool changed = false;
  std::vector<std::string> opened;
  std::vector<std::pair<std::string, v1::VersionedValue>> applied;
  RETURN_IF_ERROR(ApplyPatches(mc, Ref(v1::SUBJECT_KIND_HOUSEHOLD, h->id()), h->village_code(), key,
                               mc.event().household_fields_set().patches(), h->mutable_fields(),
                               &changed, &opened, &applied));
  for (const auto& [field, value] : applied) SetHouseholdField(*h, field, value);
  for (const std::string& id : opened) AddOpenConflict(*h, id);
  if (changed) h->set_version(h->version() + 1);
  h->set_last_offset(mc.meta().offset);
  mc.Save(keys::Household(key), *h);
  return absl::OkStatus();
}

absl::Status MergeMemberAdded(MergeContext& mc) {
  ASSIGN_OR_RETURN(std::optional<v1::Household> h, LoadSubjectHousehold(mc));
  if (!h) return absl::OkStatus();
  const v1::MemberAdded& body = mc.event().member_added();
  const std::string key = sync::SubjectKey(mc.event().subject());
  ASSIGN_OR_RETURN(std::optional<std::string> existing,
                   mc.Get(keys::MemberHousehold(body.member_id())));
  if (existing) {
    mc.Reject(v1::REJECTION_CODE_SUBJECT_EXISTS, "member_added.member_id",
              "the member was already added");
    return absl::OkStatus();
  }
  const uint64_t offset = mc.meta().offset;
  const v1::SubjectRef entity = Ref(v1::SUBJECT_KIND_MEMBER, body.member_id());
  v1::Member m;
  m.set_id(body.member_id());
  m.set_household_id(h->id());
  m.set_version(1);
  m.set_first_offset(offset);
  m.set_last_offset(offset);
  std::vector<std::pair<std::string, v1::FieldValue>> initial;
  initial.emplace_back("name", StringValue(body.name()));
  initial.emplace_back("relation", IntValue(body.relation()));
  if (!body.id_number().empty()) initial.emplace_back("id_number", StringValue(body.id_number()));
  std::vector<std::pair<std::string, v1::FieldValue>> extra(body.fields().begin(),
                                                            body.fields().end());
  std::sort(extra.begin(), extra.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  initial.insert(initial.end(), extra.begin(), extra.end());
  for (const auto& [field, value] : initial) {
    SetMemberField(m, field, mc.VersionedByEvent(value, 1));
    mc.result().writes.push_back(Outcome(entity, field, 1, v1::WRITE_RESULT_APPLIED));
  }
  mc.Save(keys::Member(key, m.id()), m);
  mc.Put(keys::MemberHousehold(m.id()), h->id());
  mc.Put(keys::Created(sync::SubjectKey(entity)), mc.event().event_id());
  h->add_member_ids(m.id());
  h->set_version(h->version() + 1);
  h->set_last_offset(offset);
  mc.Save(keys::Household(key), *h);
  return absl::OkStatus();
}

namespace {

// The member named by `member_id` in the event's household, or nullopt (and
// mc rejected UNKNOWN_REFERENCE).
absl::StatusOr<std::optional<v1::Member>> LoadMember(MergeContext& mc, const v1::Household& h,
                                                     const std::string& member_id,
                                                     const std::string& field) {
  ASSIGN_OR_RETURN(std::optional<std::string> owner, mc.Get(keys::MemberHousehold(member_id)));
  if (!owner || *owner != h.id()) {
    mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, field,
              absl::StrCat("member ", member_id, " is not a member of this household"));
    return std::optional<v1::Member>();
  }
  ASSIGN_OR_RETURN(
      std::optional<v1::Member> member,
      mc.Load<v1::Member>(keys::Member(sync::SubjectKey(mc.event().subject()), member_id)));
  if (!member) return absl::DataLossError(absl::StrCat("member ", member_id, " is missing"));
  return member;
}

}  // namespace

absl::Status MergeMemberUpdated(MergeContext& mc) {
  ASSIGN_OR_RETURN(std::optional<v1::Household> h, LoadSubjectHousehold(mc));
  if (!h) return absl::OkStatus();
  const v1::MemberUpdated& body = mc.event().member_updated();
  ASSIGN_OR_RETURN(std::optional<v1::Member> m,
                   LoadMember(mc, *h, body.member_id(), "member_updated.member_id"));
  if (!m) return absl::OkStatus();
  // A removed member's record is kept and may still be corrected, so an
  // update that races a removal lands the same in either order.
  const std::string key = sync::SubjectKey(mc.event().subject());
  bool changed = false;
  std::vector<std::string> opened;
  std::vector<std::pair<std::string, v1::VersionedValue>> applied;
  RETURN_IF_ERROR(ApplyPatches(mc, Ref(v1::SUBJECT_KIND_MEMBER, m->id()), h->village_code(), key,
                               body.patches(), m->mutable_fields(), &changed, &opened, &applied));
  for (const auto& [field, value] : applied) SetMemberField(*m, field, value);
  if (changed) {
    m->set_version(m->version() + 1);
    h->set_version(h->version() + 1);
  }
  m->set_last_offset(mc.meta().offset);
  for (const std::string& id : opened) AddOpenConflict(*h, id);
  h->set_last_offset(mc.meta().offset);
  mc.Save(keys::Member(key, m->id()), *m);
  mc.Save(keys::Household(key), *h);
  return absl::OkStatus();
}

absl::Status MergeMemberRemoved(MergeContext& mc) {
  ASSIGN_OR_RETURN(std::optional<v1::Household> h, LoadSubjectHousehold(mc));
  if (!h) return absl::OkStatus();
  const v1::MemberRemoved& body = mc.event().member_removed();
  ASSIGN_OR_RETURN(std::optional<v1::Member> m,
                   LoadMember(mc, *h, body.member_id(), "member_removed.member_id"));
  if (!m) return absl::OkStatus();
  const std::string key = sync::SubjectKey(mc.event().subject());
  const v1::SubjectRef entity = Ref(v1::SUBJECT_KIND_MEMBER, m->id());
  const std::string holder_key = keys::FieldHolder(sync::SubjectKey(entity), "removed");
  ASSIGN_OR_RETURN(std::optional<v1::ConflictSide> holder, mc.Load<v1::ConflictSide>(holder_key));
  const v1::ConflictSide incoming = mc.SideOfEvent();
  // Removing twice is no conflict (both say "removed"); the reason kept is
  // the one of the higher (HLC, device), whatever the arrival order.
  const bool apply = !m->removed() || !holder || Wins(incoming, *holder);
  if (apply) {
    m->set_removed(true);
    m->set_removal_reason(body.reason());
    m->set_removal_note(body.note());
    m->set_version(m->version() + 1);
    m->set_last_offset(mc.meta().offset);
    mc.Save(holder_key, incoming);
    mc.Save(keys::Member(key, m->id()), *m);
    auto* ids = h->mutable_member_ids();
    const auto before = ids->size();
    ids->erase(std::remove(ids->begin(), ids->end(), m->id()), ids->end());
    if (ids->size() != before) h->set_version(h->version() + 1);
    h->set_last_offset(mc.meta().offset);
    mc.Save(keys::Household(key), *h);
  }
  mc.result().writes.push_back(Outcome(entity, "removed", m->version(),
                                       apply ? v1::WRITE_RESULT_APPLIED : v1::WRITE_RESULT_LOST));
  return absl::OkStatus();
}

absl::Status MergeInsertOnly(MergeContext& mc) {
  const v1::Event& event = mc.event();
  if (event.subject().kind() != v1::SUBJECT_KIND_HOUSEHOLD) return absl::OkStatus();
  // A cheap existence check: insert-only events are most of the traffic.
  ASSIGN_OR_RETURN(std::optional<std::string> village,
                   mc.Get(keys::HouseholdVillage(event.subject().id())));
  if (!village) {
    mc.Reject(v1::REJECTION_CODE_UNKNOWN_SUBJECT, "subject",
              absl::StrCat("household ", event.subject().id(), " is not registered"));
    return absl::OkStatus();
  }
  if (*village != event.area_code()) {
    mc.Reject(v1::REJECTION_CODE_SUBJECT_MISMATCH, "area_code",
              absl::StrCat("the household lives in ", *village));
    return absl::OkStatus();
  }
  if (event.has_income_observed() && !event.income_observed().member_id().empty()) {
    ASSIGN_OR_RETURN(std::optional<std::string> owner,
                     mc.Get(keys::MemberHousehold(event.income_observed().member_id())));
    if (!owner || *owner != event.subject().id()) {
      mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, "income_observed.member_id",
                "not a member of this household");
    }
  }
  return absl::OkStatus();
}

absl::Status MergeMeasureDelivered(MergeContext& mc) {
  RETURN_IF_ERROR(MergeInsertOnly(mc));
  if (mc.rejected()) return absl::OkStatus();
  const v1::MeasureDelivered& body = mc.event().measure_delivered();
  const std::string owner = sync::SubjectKey(mc.event().subject());
  ASSIGN_OR_RETURN(std::optional<v1::Plan> plan,
                   mc.Load<v1::Plan>(keys::Plan(owner, body.plan_id())));
  if (!plan) {
    mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, "measure_delivered.plan_id",
              absl::StrCat("no plan ", body.plan_id(), " for this subject"));
    return absl::OkStatus();
  }
  // Any item some revision carried counts, winning or not: the delivering
  // device may have seen a revision that later lost a race.
  ASSIGN_OR_RETURN(std::optional<std::string> seen,
                   mc.Get(keys::PlanItemSeen(body.plan_id(), body.item_id())));
  if (!seen) {
    mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, "measure_delivered.item_id",
              absl::StrCat("plan ", body.plan_id(), " has no item ", body.item_id()));
    return absl::OkStatus();
  }
  // Validation bounds one amount (DomainOptions::max_amount_fen); the total
  // is checked here so that it never wraps (events stored before the bound
  // existed may carry any int64). A delivery that would overflow it is
  // refused, visibly, rather than saturated into a wrong total.
  int64_t& delivered = (*plan->mutable_delivered_fen())[body.item_id()];
  int64_t total = 0;
  if (body.amount_fen() < 0 || __builtin_add_overflow(delivered, body.amount_fen(), &total)) {
    mc.Reject(v1::REJECTION_CODE_INVALID_VALUE, "measure_delivered.amount_fen",
              absl::StrCat("measure_delivered.amount_fen ", body.amount_fen(),
                           " would take the delivered total of item ", body.item_id(), " (",
                           delivered, " fen) past the bound of ", INT64_MAX, " fen"));
    return absl::OkStatus();
  }
  delivered = total;
  plan->set_last_offset(mc.meta().offset);
  mc.Save(keys::Plan(owner, body.plan_id()), *plan);
  return absl::OkStatus();
}

}  // namespace fieldsync::domain
