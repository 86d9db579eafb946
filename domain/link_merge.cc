// Links: effective-dated assignments of a cadre or unit to a household,
// village or county. Started once, ended once; a replacement names the link
// it replaces. The holder must be an existing, enabled cadre (or unit) as of
// the event's place in the log: the domain's one record of users and units
// (domain/reference.h), folded from the server's UserUpserted / UnitUpserted.
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "base/status_macros.h"
#include "domain/body_merges.h"
#include "domain/domain_keys.h"
#include "domain/links.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {
namespace {

// Rejects the event (and returns false) unless the holder of `body` may hold
// a link as of this point of the log (links.h CheckLinkHolder).
absl::StatusOr<bool> HolderFits(MergeContext& mc, const v1::LinkStarted& body) {
  const bool cadre = body.holder_case() == v1::LinkStarted::kCadreId;
  std::optional<v1::User> user;
  std::optional<v1::Unit> unit;
  if (cadre) {
    ASSIGN_OR_RETURN(user, mc.Load<v1::User>(keys::User(body.cadre_id())));
  } else {
    ASSIGN_OR_RETURN(unit, mc.Load<v1::Unit>(keys::Unit(body.unit_id())));
  }
  HolderCheck check = CheckLinkHolder(cadre, cadre ? body.cadre_id() : body.unit_id(), user, unit);
  if (check.ok()) return true;
  mc.Reject(check.problem == HolderProblem::kUnknown ? v1::REJECTION_CODE_UNKNOWN_REFERENCE
                                                     : v1::REJECTION_CODE_INVALID_VALUE,
            cadre ? "link_started.cadre_id" : "link_started.unit_id", std::move(check.message));
  return false;
}

}  // namespace

absl::Status MergeLinkStarted(MergeContext& mc) {
  const v1::Event& event = mc.event();
  const v1::LinkStarted& body = event.link_started();
  // The link lives in its target's real area: a household's village (which
  // LoadSubjectHousehold checks the event's area_code against), a village's
  // or county's own code. Never only what the event claims.
  std::string area_code = event.subject().id();
  if (event.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
    ASSIGN_OR_RETURN(std::optional<v1::Household> household, LoadSubjectHousehold(mc));
    if (!household) return absl::OkStatus();
    area_code = household->village_code();
  }
  // An AREA target is a county (the only area a link role names): the
  // engine found the area imported, its level is the body's to check.
  if (event.subject().kind() == v1::SUBJECT_KIND_AREA) {
    ASSIGN_OR_RETURN(std::optional<v1::Area> area, mc.Load<v1::Area>(keys::Area(area_code)));
    if (!area || area->level() != v1::AREA_LEVEL_COUNTY) {
      mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, "area_code",
                absl::StrCat("area_code ", area_code, " is not a county the server knows",
                             area ? absl::StrCat(" (it is a ", v1::AreaLevel_Name(area->level()),
                                                 ")")
                                  : ""));
      return absl::OkStatus();
    }
  }
  ASSIGN_OR_RETURN(std::optional<std::string> existing, mc.Get(keys::LinkTarget(body.link_id())));
  if (existing) {
    mc.Reject(v1::REJECTION_CODE_SUBJECT_EXISTS, "link_started.link_id", "the link already exists");
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(bool holder_fits, HolderFits(mc, body));
  if (!holder_fits) return absl::OkStatus();
  const std::string target = sync::SubjectKey(event.subject());
  v1::Link link;
  link.set_id(body.link_id());
  const bool cadre = body.holder_case() == v1::LinkStarted::kCadreId;
  if (cadre) {
    link.set_cadre_id(body.cadre_id());
  } else {
    link.set_unit_id(body.unit_id());
  }
  *link.mutable_target() = event.subject();
  link.set_target_kind(
      event.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD ? v1::LINK_TARGET_KIND_HOUSEHOLD
      : event.subject().kind() == v1::SUBJECT_KIND_VILLAGE ? v1::LINK_TARGET_KIND_VILLAGE
                                                           : v1::LINK_TARGET_KIND_COUNTY);
  link.set_role(body.role());
  *link.mutable_valid_from() = body.valid_from();
  link.set_active(true);
  link.set_replaces_link_id(body.replaces_link_id());
  link.set_start_reason(body.reason());
  link.set_started_offset(mc.meta().offset);
  link.set_area_code(area_code);

  if (!body.replaces_link_id().empty()) {
    ASSIGN_OR_RETURN(std::optional<std::string> old_target,
                     mc.Get(keys::LinkTarget(body.replaces_link_id())));
    if (!old_target) {
      mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, "link_started.replaces_link_id",
                "the replaced link does not exist");
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(std::optional<v1::Link> old,
                     mc.Load<v1::Link>(keys::Link(*old_target, body.replaces_link_id())));
    if (!old) return absl::DataLossError("a replaced link's record is missing");
    if (!old->replaced_by_link_id().empty()) {
      mc.Reject(v1::REJECTION_CODE_ALREADY_DECIDED, "link_started.replaces_link_id",
                absl::StrCat("the link was already replaced by ", old->replaced_by_link_id()));
      return absl::OkStatus();
    }
    old->set_replaced_by_link_id(body.link_id());
    mc.Save(keys::Link(*old_target, old->id()), *old);
  }
  mc.Save(keys::Link(target, link.id()), link);
  mc.Put(keys::LinkTarget(link.id()), target);
  // The order indexes: a link's area, target, holder and valid_from never
  // change, so they are written once.
  const std::string order = LinkOrder(link);
  mc.Put(keys::LinkOrder(order), target);
  mc.Put(keys::LinkHolder(cadre, cadre ? body.cadre_id() : body.unit_id(), order), target);
  return absl::OkStatus();
}

absl::Status MergeLinkEnded(MergeContext& mc) {
  const v1::Event& event = mc.event();
  const v1::LinkEnded& body = event.link_ended();
  const std::string target = sync::SubjectKey(event.subject());
  ASSIGN_OR_RETURN(std::optional<std::string> link_target,
                   mc.Get(keys::LinkTarget(body.link_id())));
  if (!link_target) {
    mc.Reject(v1::REJECTION_CODE_UNKNOWN_REFERENCE, "link_ended.link_id", "no such link");
    return absl::OkStatus();
  }
  if (*link_target != target) {
    mc.Reject(v1::REJECTION_CODE_SUBJECT_MISMATCH, "subject", "the link has another target");
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::optional<v1::Link> link,
                   mc.Load<v1::Link>(keys::Link(target, body.link_id())));
  if (!link) return absl::DataLossError("a link's record is missing");
  if (link->ended_offset() != 0) {
    mc.Reject(v1::REJECTION_CODE_ALREADY_DECIDED, "link_ended.link_id", "the link already ended");
    return absl::OkStatus();
  }
  if (DateNumber(body.valid_to()) < DateNumber(link->valid_from())) {
    mc.Reject(v1::REJECTION_CODE_INVALID_VALUE, "link_ended.valid_to",
              "valid_to is before the link's valid_from");
    return absl::OkStatus();
  }
  *link->mutable_valid_to() = body.valid_to();
  link->set_end_reason(body.reason());
  link->set_end_note(body.note());
  link->set_ended_offset(mc.meta().offset);
  link->set_active(LinkActive(*link, DateOf(mc.meta().received_at)));
  mc.Save(keys::Link(target, link->id()), *link);
  return absl::OkStatus();
}

}  // namespace fieldsync::domain
