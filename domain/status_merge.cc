// Household status: proposals and decisions through the state machine
// (status_machine.h). Contested transitions become conflicts; only an
// authorized, fresh, single-step county decision (or a county resolution)
// changes the status.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "domain/body_merges.h"
#include "domain/domain_keys.h"
#include "domain/status_machine.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {
namespace {

v1::WriteOutcome StatusOutcome(const v1::Household& h, v1::WriteResult result,
                               const std::string& conflict_id = "") {
  v1::WriteOutcome out;
  out.mutable_entity()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  out.mutable_entity()->set_id(h.id());
  out.set_field("status");
  out.set_version(h.status_version());
  out.set_result(result);
  out.set_conflict_id(conflict_id);
  return out;
}

// The side that set the household's current status.
absl::StatusOr<v1::ConflictSide> StandingSide(MergeContext& mc, const v1::Household& h) {
  ASSIGN_OR_RETURN(std::optional<v1::ConflictSide> side,
                   mc.Load<v1::ConflictSide>(keys::StatusHolder(h.id())));
  if (side) return *side;
  v1::ConflictSide synthesized;
  synthesized.mutable_status()->set_to_status(h.status());
  synthesized.mutable_status()->set_monitoring_type(h.monitoring_type());
  return synthesized;
}

// What is wrong with a transition, if anything: a stale view first (the
// writer's other choices may be artifacts of it), then the role, then a
// skipped step.
std::optional<v1::ConflictKind> ContestOf(const v1::Household& h, v1::HouseholdStatus from,
                                          v1::HouseholdStatus to, uint64_t base_version,
                                          bool role_ok) {
  if (from != h.status() || (base_version != 0 && base_version != h.status_version())) {
    return v1::CONFLICT_KIND_STATUS_STALE_FROM;
  }
  if (!role_ok) return v1::CONFLICT_KIND_STATUS_WRONG_ROLE;
  if (ClassifyTransition(from, to) == TransitionKind::kSkip) {
    return v1::CONFLICT_KIND_STATUS_SKIPPED_STEP;
  }
  return std::nullopt;
}

absl::Status OpenStatusConflict(MergeContext& mc, v1::Household& h, v1::ConflictKind kind,
                                v1::HouseholdStatus from, v1::HouseholdStatus to,
                                v1::MonitoringType type, uint64_t base_version) {
  ASSIGN_OR_RETURN(v1::ConflictSide standing, StandingSide(mc, h));
  v1::ConflictSide contested = mc.SideOfEvent();
  contested.mutable_status()->set_from_status(from);
  contested.mutable_status()->set_to_status(to);
  contested.mutable_status()->set_monitoring_type(type);
  v1::Conflict conflict;
  conflict.set_id(mc.NewConflictId());
  conflict.set_kind(kind);
  conflict.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  conflict.mutable_subject()->set_id(h.id());
  conflict.set_area_code(h.village_code());
  conflict.set_field("status");
  conflict.set_base_version(base_version != 0 ? base_version : h.status_version());
  *conflict.add_sides() = standing;
  *conflict.add_sides() = contested;
  conflict.set_winner_side(0);
  conflict.set_open(true);
  conflict.set_created_offset(mc.meta().offset);
  *conflict.mutable_created_at() = mc.ReceivedAt();
  RETURN_IF_ERROR(SaveConflict(mc, conflict, sync::SubjectKey(mc.event().subject())));
  AddOpenConflict(h, conflict.id());
  mc.NoteConflict(conflict.id());
  mc.result().writes.push_back(StatusOutcome(h, v1::WRITE_RESULT_LOST, conflict.id()));
  return absl::OkStatus();
}

// Removes one entry `event_id` from the household's pending list: two devices'
// pending proposals may share an event_id, and deciding one leaves the other.
void RemovePending(v1::Household& h, const std::string& event_id) {
  auto* ids = h.mutable_pending_proposal_event_ids();
  auto it = std::find(ids->begin(), ids->end(), event_id);
  if (it != ids->end()) ids->erase(it);
}

// A pending proposal a decision resolved to.
struct ResolvedProposal {
  std::string device_id;  // Its signer; with the event_id, its key.
  v1::Event event;
};

// Resolves the decision's proposal_event_id like the engine resolves a
// reference (sync_engine.cc CheckReferences): the candidates are this
// household's proposals with that id (one per signing device), in log order;
// the decision takes the first that fits (still pending, same to_status and
// monitoring_type; for an audit approval, not audited yet if any such fits);
// if none fits, the first candidate's refusal is the answer.
// So the decision never depends on which device wrote its proposal last, and
// a later proposal under a taken id cannot capture a decision that fits the
// earlier one. Nullopt after mc.Reject.
absl::StatusOr<std::optional<ResolvedProposal>> ResolveProposal(
    MergeContext& mc, const v1::Household& h, const v1::StatusChangeConfirmed& c) {
  const std::string& id = c.proposal_event_id();
  ASSIGN_OR_RETURN(std::optional<v1::StringList> signers,
                   mc.Load<v1::StringList>(keys::ProposalSigners(h.id(), id)));
  if (!signers || signers->values().empty()) {
    mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, "status_change_confirmed.proposal_event_id",
              "no pending proposal with this id (it may have become a conflict)");
    return std::nullopt;
  }
  // An audit approval leaves its proposal pending: it prefers a fitting
  // proposal not audited yet, so that each approval audits the next of two
  // identical proposals, and falls back to an audited one (a repeated audit).
  const bool audit_approval =
      c.stage() == v1::REVIEW_STAGE_TOWNSHIP_AUDIT && c.decision() == v1::REVIEW_DECISION_APPROVE;
  std::optional<ResolvedProposal> first_audited;
  std::optional<sync::Rejection> first_refusal;
  for (const std::string& device_id : signers->values()) {
    ASSIGN_OR_RETURN(std::optional<v1::Event> proposal,
                     mc.Load<v1::Event>(keys::Proposal(h.id(), device_id, id)));
    if (!proposal) {
      return absl::DataLossError(absl::StrCat("household ", h.id(), ": proposal ", device_id, "/",
                                              id, " is listed but not stored"));
    }
    ASSIGN_OR_RETURN(std::optional<std::string> decided,
                     mc.Get(keys::ProposalDecided(h.id(), device_id, id)));
    std::optional<sync::Rejection> refusal;
    const v1::StatusChangeProposed& p = proposal->status_change_proposed();
    if (decided) {
      refusal = sync::Rejection{v1::REJECTION_CODE_ALREADY_DECIDED,
                                "status_change_confirmed.proposal_event_id",
                                "the proposal was already decided"};
    } else if (p.to_status() != c.to_status() || p.monitoring_type() != c.monitoring_type()) {
      refusal =
          sync::Rejection{v1::REJECTION_CODE_INVALID_VALUE, "status_change_confirmed.to_status",
                          "the decision does not match the proposal"};
    }
    if (!refusal) {
      if (!audit_approval) return ResolvedProposal{device_id, *std::move(proposal)};
      ASSIGN_OR_RETURN(std::optional<std::string> audited,
                       mc.Get(keys::ProposalAudit(h.id(), device_id, id)));
      if (!audited) return ResolvedProposal{device_id, *std::move(proposal)};
      if (!first_audited) first_audited = ResolvedProposal{device_id, *std::move(proposal)};
      continue;
    }
    if (!first_refusal) first_refusal = std::move(refusal);
  }
  if (first_audited) return first_audited;
  mc.Reject(first_refusal->code, first_refusal->field, first_refusal->message);
  return std::nullopt;
}

// Marks a resolved proposal decided: off the pending list, never chosen again.
void Decide(MergeContext& mc, v1::Household& h, const ResolvedProposal& proposal) {
  mc.Put(keys::ProposalDecided(h.id(), proposal.device_id, proposal.event.event_id()), "");
  RemovePending(h, proposal.event.event_id());
}

}  // namespace

absl::Status ApplyStatus(MergeContext& mc, v1::Household& h, v1::HouseholdStatus to,
                         v1::MonitoringType type) {
  v1::ConflictSide standing = mc.SideOfEvent();
  standing.mutable_status()->set_from_status(h.status());
  standing.mutable_status()->set_to_status(to);
  standing.mutable_status()->set_monitoring_type(type);
  h.set_status(to);
  h.set_monitoring_type(to == v1::HOUSEHOLD_STATUS_MONITORED ? type
                                                             : v1::MONITORING_TYPE_UNSPECIFIED);
  h.set_status_version(h.status_version() + 1);
  h.set_version(h.version() + 1);
  *h.mutable_status_changed_at() = mc.ReceivedAt();
  mc.Save(keys::StatusHolder(h.id()), standing);
  mc.result().writes.push_back(StatusOutcome(h, v1::WRITE_RESULT_APPLIED));
  return absl::OkStatus();
}

absl::Status MergeStatusChangeProposed(MergeContext& mc) {
  ASSIGN_OR_RETURN(std::optional<v1::Household> h, LoadSubjectHousehold(mc));
  if (!h) return absl::OkStatus();
  const v1::StatusChangeProposed& p = mc.event().status_change_proposed();
  const std::optional<v1::ConflictKind> contest =
      ContestOf(*h, p.from_status(), p.to_status(), p.base_status_version(),
                MayPropose(mc.meta().author.role));
  if (contest) {
    RETURN_IF_ERROR(OpenStatusConflict(mc, *h, *contest, p.from_status(), p.to_status(),
                                       p.monitoring_type(), p.base_status_version()));
  } else {
    // Keyed by signer: another device's proposal with this event_id is
    // another proposal (docs/sync.md "Merge", Status).
    const std::string& id = mc.event().event_id();
    const std::string& device_id = mc.event().device_id();
    ASSIGN_OR_RETURN(std::optional<v1::StringList> signers,
                     mc.Load<v1::StringList>(keys::ProposalSigners(h->id(), id)));
    if (!signers) signers.emplace();
    signers->add_values(device_id);
    mc.Save(keys::ProposalSigners(h->id(), id), *signers);
    mc.Save(keys::Proposal(h->id(), device_id, id), mc.event());
    h->add_pending_proposal_event_ids(id);
  }
  h->set_last_offset(mc.meta().offset);
  mc.Save(keys::Household(sync::SubjectKey(mc.event().subject())), *h);
  return absl::OkStatus();
}

absl::Status MergeStatusChangeConfirmed(MergeContext& mc) {
  ASSIGN_OR_RETURN(std::optional<v1::Household> h, LoadSubjectHousehold(mc));
  if (!h) return absl::OkStatus();
  const v1::StatusChangeConfirmed& c = mc.event().status_change_confirmed();
  std::optional<ResolvedProposal> proposal;
  if (!c.proposal_event_id().empty()) {
    ASSIGN_OR_RETURN(proposal, ResolveProposal(mc, *h, c));
    if (!proposal) return absl::OkStatus();  // Rejected.
  }
  const std::optional<v1::ConflictKind> contest =
      ContestOf(*h, c.from_status(), c.to_status(), c.base_status_version(),
                MayReview(mc.meta().author.role, c.stage()));
  const std::string key = sync::SubjectKey(mc.event().subject());
  if (contest) {
    RETURN_IF_ERROR(OpenStatusConflict(mc, *h, *contest, c.from_status(), c.to_status(),
                                       c.monitoring_type(), c.base_status_version()));
  } else if (c.stage() == v1::REVIEW_STAGE_TOWNSHIP_AUDIT) {
    // Validation requires a proposal at this stage; checked again so that
    // no input reaches a dereference of nothing.
    if (proposal) {
      if (c.decision() == v1::REVIEW_DECISION_APPROVE) {
        mc.Put(keys::ProposalAudit(h->id(), proposal->device_id, proposal->event.event_id()), "");
      } else {
        Decide(mc, *h, *proposal);
      }
    }
  } else {
    if (proposal) Decide(mc, *h, *proposal);
    if (c.decision() == v1::REVIEW_DECISION_APPROVE) {
      RETURN_IF_ERROR(ApplyStatus(mc, *h, c.to_status(), c.monitoring_type()));
    }
  }
  h->set_last_offset(mc.meta().offset);
  mc.Save(keys::Household(key), *h);
  return absl::OkStatus();
}

}  // namespace fieldsync::domain
