// AdminService: links (StartLink, EndLink, ListLinks). The link itself is
// domain state (domain/links.h): the handlers check, append, and read the
// domain's indexes.
#include "domain/domain_keys.h"
#include "domain/field_schema.h"
#include "domain/links.h"
#include "server/admin_service_internal.h"
#include "sync/event_codec.h"

namespace fieldsync::server {

namespace {

struct Holder {
  bool cadre = false;
  std::string id;
};

v1::Link Presented(v1::Link link, const v1::Date& today) {
  link.set_active(LinkActive(link, today));
  return link;
}

}  // namespace

// --- Links -------------------------------------------------------------------------------

namespace {

// Checks a holder named by a link request and returns it.
absl::StatusOr<Holder> CheckHolder(const Directory& directory, std::string_view field,
                                   bool is_cadre, bool is_unit, const std::string& cadre_id,
                                   const std::string& unit_id) {
  if (!is_cadre && !is_unit) {
    return Invalid(absl::StrCat(std::string(field), ": a cadre_id or a unit_id is required"));
  }
  Holder holder{is_cadre, is_cadre ? cadre_id : unit_id};
  RETURN_IF_ERROR(
      IdField(absl::StrCat(std::string(field), is_cadre ? "cadre_id" : "unit_id"), holder.id));
  // The domain's rule (domain/links.h), the one a pushed LinkStarted meets.
  std::optional<v1::User> user;
  std::optional<v1::Unit> unit;
  if (is_cadre) {
    ASSIGN_OR_RETURN(user, directory.GetUser(holder.id));
  } else {
    ASSIGN_OR_RETURN(unit, directory.GetUnit(holder.id));
  }
  domain::HolderCheck check = domain::CheckLinkHolder(is_cadre, holder.id, user, unit);
  switch (check.problem) {
    case domain::HolderProblem::kNone:
      return holder;
    case domain::HolderProblem::kUnknown:
      return absl::NotFoundError(check.message);
    case domain::HolderProblem::kNotCadre:
      return Invalid(check.message);
    case domain::HolderProblem::kDisabled:
      return absl::FailedPreconditionError(check.message);
  }
  return holder;
}

// The target's kind and area code. NotFound if it does not exist.
absl::StatusOr<std::pair<v1::LinkTargetKind, std::string>> LocateTarget(
    const Directory& directory, const v1::SubjectRef& target) {
  if (target.id().empty()) return Invalid("target.id is required");
  switch (target.kind()) {
    case v1::SUBJECT_KIND_HOUSEHOLD: {
      ASSIGN_OR_RETURN(std::optional<HouseholdPlace> place,
                       directory.households().FindById(target.id()));
      if (!place.has_value()) {
        return absl::NotFoundError(absl::StrCat("no household '", target.id(), "'"));
      }
      return std::make_pair(v1::LINK_TARGET_KIND_HOUSEHOLD, place->village_code);
    }
    case v1::SUBJECT_KIND_VILLAGE:
    case v1::SUBJECT_KIND_AREA: {
      bool village = target.kind() == v1::SUBJECT_KIND_VILLAGE;
      ASSIGN_OR_RETURN(std::optional<v1::Area> area, directory.GetArea(target.id()));
      if (!area.has_value())
        return absl::NotFoundError(absl::StrCat("no area '", target.id(), "'"));
      v1::AreaLevel wanted = village ? v1::AREA_LEVEL_VILLAGE : v1::AREA_LEVEL_COUNTY;
      if (area->level() != wanted) {
        return Invalid(absl::StrCat("target ", target.id(), " is a ", LevelName(area->level()),
                                    "; links go to households, villages (VILLAGE) and counties "
                                    "(AREA)"));
      }
      return std::make_pair(village ? v1::LINK_TARGET_KIND_VILLAGE : v1::LINK_TARGET_KIND_COUNTY,
                            area->code());
    }
    default:
      return Invalid("target.kind must be HOUSEHOLD, VILLAGE or AREA (a county)");
  }
}

absl::StatusOr<v1::Date> DateOrToday(const Directory& directory, std::string_view field, bool has,
                                     const v1::Date& date) {
  if (!has) return directory.Today();
  // The same rule as a pushed LinkStarted / LinkEnded date (the domain's).
  if (!domain::IsValidDate(date)) {
    return Invalid(absl::StrCat(std::string(field), " ", date.year(), "-", date.month(), "-",
                                date.day(), " is not a valid date (a real date of the years ",
                                domain::kMinDateYear, "-", domain::kMaxDateYear, ")"));
  }
  return date;
}

absl::Status NotAlreadyLinked(const Directory& directory, const storage::EventStore& store,
                              const Holder& holder, const std::string& area_code,
                              const v1::SubjectRef& target, v1::LinkRole role) {
  std::string prefix =
      absl::StrCat(domain::keys::LinkHolderScan(holder.cadre, holder.id),
                   domain::keys::LinkTargetOrder(area_code, target.kind(), target.id()));
  ASSIGN_OR_RETURN(auto entries, store.ScanProjections(prefix, "", 1000));
  v1::Date today = directory.Today();
  for (const auto& [key, value] : entries) {
    ASSIGN_OR_RETURN(v1::Link link, domain::LinkOfIndexEntry(directory.projections(), key, value));
    if (link.role() == role && LinkActive(link, today) && link.ended_offset() == 0) {
      return absl::AlreadyExistsError(
          absl::StrCat(holder.id, " is already linked to ", sync::SubjectKey(target), " as ",
                       v1::LinkRole_Name(role), " by link ", link.id()));
    }
  }
  return absl::OkStatus();
}

void SetHolder(v1::Link& link, const Holder& holder) {
  if (holder.cadre) {
    link.set_cadre_id(holder.id);
  } else {
    link.set_unit_id(holder.id);
  }
}

void SetHolder(v1::LinkStarted& started, const Holder& holder) {
  if (holder.cadre) {
    started.set_cadre_id(holder.id);
  } else {
    started.set_unit_id(holder.id);
  }
}

// The LinkStarted change of `link` (holder, target, role, valid_from,
// start_reason and replaces_link_id set). It has no projection writes of its
// own: the domain's merge, run by the sync engine in the same commit, records the
// link (and refuses it, FAILED_PRECONDITION, if the log moved on since the
// checks: the id taken, the holder disabled meanwhile).
ServerChange LinkStartedChange(const v1::Link& link, v1::Role actor_role) {
  ServerChange change;
  change.actor_role = actor_role;
  *change.event.mutable_subject() = link.target();
  change.event.set_area_code(link.area_code());
  v1::LinkStarted* body = change.event.mutable_link_started();
  body->set_link_id(link.id());
  SetHolder(*body,
            Holder{link.holder_case() == v1::Link::kCadreId,
                   link.holder_case() == v1::Link::kCadreId ? link.cadre_id() : link.unit_id()});
  body->set_role(link.role());
  *body->mutable_valid_from() = link.valid_from();
  body->set_replaces_link_id(link.replaces_link_id());
  body->set_reason(link.start_reason());
  return change;
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::StartLink(grpc::CallbackServerContext* context,
                                                      const v1::StartLinkRequest* request,
                                                      v1::StartLinkResponse* response) {
  return RunAdminChange(
      *ctx_, context, FIELDSYNC_METHOD_PATH(AdminService, StartLink),
      [&](GuardedUnary& guarded) -> absl::StatusOr<AdminChange> {
        GuardedUnary* call = &guarded;
        const Directory& directory = *ctx_->directory;
        auto validate = [&]() -> absl::StatusOr<v1::Link> {
          v1::Link link;
          if (request->link_id().empty()) {
            link.set_id(NewUuid());
          } else {
            RETURN_IF_ERROR(IdField("link_id", request->link_id()));
            link.set_id(request->link_id());
          }
          if (!request->has_target()) return Invalid("target is required");
          if (!v1::LinkRole_IsValid(request->role()) ||
              request->role() == v1::LINK_ROLE_UNSPECIFIED) {
            return Invalid("role is required (a LinkRole)");
          }
          ASSIGN_OR_RETURN(auto target, LocateTarget(directory, request->target()));
          // Scope: the target must be in the caller's scope (county staff: their county).
          if (!sync::CoversArea(call->scope(), target.second)) {
            return OutOfScope(call->principal(),
                              absl::StrCat("link target ", sync::SubjectKey(request->target())));
          }
          ASSIGN_OR_RETURN(Holder holder, CheckHolder(directory, "", request->has_cadre_id(),
                                                      request->has_unit_id(), request->cadre_id(),
                                                      request->unit_id()));
          if (!domain::FitLinkRole(request->role(), holder.cadre, request->target().kind()).ok()) {
            return Invalid(absl::StrCat("role ", v1::LinkRole_Name(request->role()),
                                        " does not fit a ", holder.cadre ? "cadre" : "unit",
                                        " linked to a ", v1::LinkTargetKind_Name(target.first)));
          }
          ASSIGN_OR_RETURN(v1::Date valid_from,
                           DateOrToday(directory, "valid_from", request->has_valid_from(),
                                       request->valid_from()));
          RETURN_IF_ERROR(TextField("reason", request->reason(), false, kMaxReasonBytes));
          ASSIGN_OR_RETURN(std::optional<v1::Link> existing, directory.GetLink(link.id()));
          if (existing.has_value()) {
            return absl::AlreadyExistsError(absl::StrCat("link ", link.id(), " already exists"));
          }
          RETURN_IF_ERROR(NotAlreadyLinked(directory, *ctx_->store, holder, target.second,
                                           request->target(), request->role()));
          SetHolder(link, holder);
          *link.mutable_target() = request->target();
          link.set_target_kind(target.first);
          link.set_role(request->role());
          *link.mutable_valid_from() = valid_from;
          link.set_start_reason(request->reason());
          link.set_area_code(target.second);
          return link;
        };
        absl::StatusOr<v1::Link> link = validate();
        if (!link.ok()) return link.status();
        AdminChange out;
        out.changes.push_back(LinkStartedChange(*link, call->principal().role()));
        v1::Date today = directory.Today();
        out.answer = [response, link = *std::move(link),
                      today](const std::vector<sync::LoggedEvent>& events) mutable {
          // The link as the domain's merge recorded it.
          link.set_started_offset(events.front().offset());
          *response->mutable_link() = Presented(std::move(link), today);
          response->set_offset(events.front().offset());
        };
        return out;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::EndLink(grpc::CallbackServerContext* context,
                                                    const v1::EndLinkRequest* request,
                                                    v1::EndLinkResponse* response) {
  return RunAdminChange(
      *ctx_, context, FIELDSYNC_METHOD_PATH(AdminService, EndLink),
      [&](GuardedUnary& guarded) -> absl::StatusOr<AdminChange> {
        GuardedUnary* call = &guarded;
        const Directory& directory = *ctx_->directory;
        struct Plan {
          v1::Link old;
          v1::Date valid_to;
          std::optional<v1::Link> replacement;
        };
        auto validate = [&]() -> absl::StatusOr<Plan> {
          RETURN_IF_ERROR(IdField("link_id", request->link_id()));
          ASSIGN_OR_RETURN(std::optional<v1::Link> old, directory.GetLink(request->link_id()));
          if (!old.has_value()) {
            return absl::NotFoundError(absl::StrCat("no link '", request->link_id(), "'"));
          }
          if (!sync::CoversArea(call->scope(), old->area_code())) {
            return OutOfScope(call->principal(), absl::StrCat("link ", old->id()));
          }
          if (old->ended_offset() != 0) {
            return absl::FailedPreconditionError(absl::StrCat(
                "link ", old->id(), " already ended (valid_to ", DateNumber(old->valid_to()), ")"));
          }
          if (!v1::LinkEndReason_IsValid(request->reason()) ||
              request->reason() == v1::LINK_END_REASON_UNSPECIFIED) {
            return Invalid("reason is required (a LinkEndReason)");
          }
          RETURN_IF_ERROR(TextField("note", request->note(),
                                    request->reason() == v1::LINK_END_REASON_OTHER,
                                    kMaxReasonBytes));
          Plan plan;
          ASSIGN_OR_RETURN(
              plan.valid_to,
              DateOrToday(directory, "valid_to", request->has_valid_to(), request->valid_to()));
          if (DateNumber(plan.valid_to) < DateNumber(old->valid_from())) {
            return Invalid(absl::StrCat("valid_to ", DateNumber(plan.valid_to),
                                        " is before the link's valid_from ",
                                        DateNumber(old->valid_from())));
          }
          const v1::LinkReplacement& r = request->replacement();
          bool has_replacement = request->has_replacement();
          if (request->reason() == v1::LINK_END_REASON_REPLACED && !has_replacement) {
            return Invalid(
                "reason REPLACED needs a replacement (the target is never left unlinked)");
          }
          if (has_replacement) {
            ASSIGN_OR_RETURN(Holder holder,
                             CheckHolder(directory, "replacement.", r.has_cadre_id(),
                                         r.has_unit_id(), r.cadre_id(), r.unit_id()));
            bool old_cadre = old->holder_case() == v1::Link::kCadreId;
            if (holder.cadre != old_cadre) {
              return Invalid(absl::StrCat("replacement must be a ", old_cadre ? "cadre" : "unit",
                                          " like the holder of link ", old->id()));
            }
            if (holder.id == (old_cadre ? old->cadre_id() : old->unit_id())) {
              return Invalid("replacement names the link's current holder");
            }
            RETURN_IF_ERROR(TextField("replacement.reason", r.reason(), true, kMaxReasonBytes));
            v1::Date day_after = AddDays(plan.valid_to, 1);
            ASSIGN_OR_RETURN(v1::Date valid_from,
                             r.has_valid_from() ? DateOrToday(directory, "replacement.valid_from",
                                                              true, r.valid_from())
                                                : absl::StatusOr<v1::Date>(day_after));
            if (DateNumber(valid_from) > DateNumber(day_after)) {
              return Invalid(absl::StrCat("replacement.valid_from ", DateNumber(valid_from),
                                          " leaves a gap after valid_to ",
                                          DateNumber(plan.valid_to)));
            }
            if (DateNumber(valid_from) < DateNumber(old->valid_from())) {
              return Invalid(absl::StrCat("replacement.valid_from ", DateNumber(valid_from),
                                          " is before the old link's valid_from"));
            }
            RETURN_IF_ERROR(NotAlreadyLinked(directory, *ctx_->store, holder, old->area_code(),
                                             old->target(), old->role()));
            v1::Link next;
            next.set_id(NewUuid());
            SetHolder(next, holder);
            *next.mutable_target() = old->target();
            next.set_target_kind(old->target_kind());
            next.set_role(old->role());
            *next.mutable_valid_from() = valid_from;
            next.set_replaces_link_id(old->id());
            next.set_start_reason(r.reason());
            next.set_area_code(old->area_code());
            plan.replacement = std::move(next);
          }
          plan.old = *std::move(old);
          return plan;
        };
        absl::StatusOr<Plan> plan = validate();
        if (!plan.ok()) return plan.status();
        // No projection writes of our own: the domain's merge, run by the sync engine
        // in the same commit, ends the link (and starts the replacement, which
        // marks the old link replaced_by). If the link ended meanwhile (a device's
        // LinkEnded committed after our checks) the domain refuses and the call
        // fails FAILED_PRECONDITION.
        std::vector<ServerChange> changes;
        {
          ServerChange change;
          change.actor_role = call->principal().role();
          *change.event.mutable_subject() = plan->old.target();
          change.event.set_area_code(plan->old.area_code());
          v1::LinkEnded* body = change.event.mutable_link_ended();
          body->set_link_id(plan->old.id());
          *body->mutable_valid_to() = plan->valid_to;
          body->set_reason(request->reason());
          body->set_note(request->note());
          changes.push_back(std::move(change));
        }
        if (plan->replacement.has_value()) {
          changes.push_back(LinkStartedChange(*plan->replacement, call->principal().role()));
        }
        v1::Date today = directory.Today();
        v1::Link ended = plan->old;
        *ended.mutable_valid_to() = plan->valid_to;
        ended.set_end_reason(request->reason());
        ended.set_end_note(request->note());
        if (plan->replacement.has_value()) ended.set_replaced_by_link_id(plan->replacement->id());
        AdminChange out;
        out.changes = std::move(changes);
        out.answer = [response, ended = std::move(ended),
                      replacement = std::move(plan->replacement),
                      today](const std::vector<sync::LoggedEvent>& events) mutable {
          ended.set_ended_offset(events.front().offset());
          *response->mutable_ended() = Presented(std::move(ended), today);
          if (replacement.has_value()) {
            replacement->set_started_offset(events.back().offset());
            *response->mutable_replacement() = Presented(*std::move(replacement), today);
          }
          response->set_offset(events.back().offset());
        };
        return out;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListLinks(grpc::CallbackServerContext* context,
                                                      const v1::ListLinksRequest* request,
                                                      v1::ListLinksResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, ListLinks));
  if (!call->admitted()) return call;
  const Directory& directory = *ctx_->directory;
  auto list = [&]() -> absl::Status {
    RETURN_IF_ERROR(ValidatePrefix("scope_prefix", request->scope_prefix(), true));
    if (!request->cadre_id().empty() && !request->unit_id().empty()) {
      return Invalid("give cadre_id or unit_id, not both");
    }
    if (!request->cadre_id().empty()) RETURN_IF_ERROR(IdField("cadre_id", request->cadre_id()));
    if (!request->unit_id().empty()) RETURN_IF_ERROR(IdField("unit_id", request->unit_id()));
    if (!v1::LinkTargetKind_IsValid(request->target_kind())) {
      return Invalid(
          absl::StrCat("target_kind ", request->target_kind(), " is not a LinkTargetKind"));
    }
    if (request->has_target() && (request->target().id().empty() ||
                                  request->target().kind() == v1::SUBJECT_KIND_UNSPECIFIED)) {
      return Invalid("target needs a kind and an id");
    }
    const Scope& scope = call->scope();
    if (!sync::CoversPrefix(scope, request->scope_prefix())) {
      return OutOfScope(call->principal(),
                        request->scope_prefix().empty()
                            ? std::string("the whole province (empty scope_prefix)")
                            : absl::StrCat("scope_prefix ", request->scope_prefix()));
    }
    // Which index: a holder's links, or all links; then narrowed by target
    // or by area prefix (both order keys start with the area code).
    // The domain's link indexes (domain/domain_keys.h): every link, whoever
    // started or ended it.
    std::string prefix =
        !request->cadre_id().empty()  ? domain::keys::LinkHolderScan(true, request->cadre_id())
        : !request->unit_id().empty() ? domain::keys::LinkHolderScan(false, request->unit_id())
                                      : std::string(domain::keys::kLinkOrderPrefix);
    if (request->has_target()) {
      absl::StatusOr<std::string> area = directory.AreaOfSubject(request->target());
      if (absl::IsNotFound(area.status())) return absl::OkStatus();  // No such target: no links.
      if (!area.ok()) return area.status();
      if (!absl::StartsWith(*area, request->scope_prefix())) return absl::OkStatus();
      absl::StrAppend(&prefix, domain::keys::LinkTargetOrder(*area, request->target().kind(),
                                                             request->target().id()));
    } else {
      absl::StrAppend(&prefix, request->scope_prefix());
    }
    v1::Date today = directory.Today();
    std::vector<v1::Link> links;
    ASSIGN_OR_RETURN(
        IndexPage page,
        ScanIndexPage(
            *ctx_->store, prefix, request->page_token(), ctx_->PageSize(request->page_size()), ctx_->settings.max_examined_records,
            [&](std::string_view key, std::string_view target) -> absl::StatusOr<bool> {
              ASSIGN_OR_RETURN(v1::Link link,
                               domain::LinkOfIndexEntry(directory.projections(), key, target));
              if (request->target_kind() != v1::LINK_TARGET_KIND_UNSPECIFIED &&
                  link.target_kind() != request->target_kind()) {
                return false;
              }
              if (request->active_only() && !LinkActive(link, today)) return false;
              links.push_back(Presented(std::move(link), today));
              return true;
            }));
    links.resize(page.entries.size());
    for (v1::Link& link : links) *response->add_links() = std::move(link);
    response->set_next_page_token(page.next_page_token);
    return absl::OkStatus();
  };
  call->Finish(list());
  return call;
}

}  // namespace fieldsync::server
