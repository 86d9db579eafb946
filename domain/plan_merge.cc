// Plans: versioned item lists. Every revision stays in the log; the plan's
// state holds the winning one, concurrent revisions make a PLAN_CONCURRENT
// conflict under the same rule as fields (merge_context.h Contend).
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "domain/body_merges.h"
#include "domain/domain_keys.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {

absl::Status MergePlanRevised(MergeContext& mc) {
  const v1::Event& event = mc.event();
  const v1::PlanRevised& body = event.plan_revised();
  std::optional<v1::Household> household;
  if (event.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
    ASSIGN_OR_RETURN(household, LoadSubjectHousehold(mc));
    if (!household) return absl::OkStatus();
  }
  const std::string owner = sync::SubjectKey(event.subject());
  ASSIGN_OR_RETURN(std::optional<v1::Plan> plan,
                   mc.Load<v1::Plan>(keys::Plan(owner, body.plan_id())));
  if (plan) {
    if (plan->kind() != body.kind() || plan->year() != body.year() ||
        plan->unit_id() != body.unit_id()) {
      mc.Reject(v1::REJECTION_CODE_INVALID_VALUE, "plan_revised.kind",
                "a plan's kind, year and unit never change");
      return absl::OkStatus();
    }
  } else {
    plan.emplace();
    plan->set_id(body.plan_id());
    plan->set_kind(body.kind());
    *plan->mutable_subject() = event.subject();
    plan->set_unit_id(body.unit_id());
    plan->set_year(body.year());
    plan->set_first_offset(mc.meta().offset);
  }
  v1::SubjectRef entity;
  entity.set_kind(v1::SUBJECT_KIND_PLAN);
  entity.set_id(body.plan_id());
  Contest contest;
  contest.kind = v1::CONFLICT_KIND_PLAN_CONCURRENT;
  contest.entity = entity;
  contest.field = "items";
  contest.area_code = event.area_code();
  contest.owner_key = owner;
  contest.current_version = plan->version();
  contest.base_version = body.base_version();
  contest.incoming = mc.SideOfEvent();
  *contest.incoming.mutable_plan()->mutable_items() = body.items();
  ASSIGN_OR_RETURN(ContestResult decided, Contend(mc, contest));

  plan->set_revisions(plan->revisions() + 1);
  for (const v1::PlanItem& item : body.items()) {
    mc.Put(keys::PlanItemSeen(body.plan_id(), item.item_id()), "");
  }
  if (decided.apply) {
    *plan->mutable_items() = body.items();
    plan->set_version(plan->version() + 1);
    plan->set_hlc(mc.meta().adopted_hlc);
  }
  plan->set_last_offset(mc.meta().offset);
  mc.Save(keys::Plan(owner, body.plan_id()), *plan);
  if (household && decided.opened) {
    AddOpenConflict(*household, decided.conflict_id);
    household->set_last_offset(mc.meta().offset);
    mc.Save(keys::Household(owner), *household);
  }
  v1::WriteOutcome out;
  *out.mutable_entity() = entity;
  out.set_field("items");
  out.set_version(plan->version());
  out.set_result(decided.result);
  out.set_conflict_id(decided.conflict_id);
  mc.result().writes.push_back(std::move(out));
  return absl::OkStatus();
}

}  // namespace fieldsync::domain
