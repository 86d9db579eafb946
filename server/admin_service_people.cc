// AdminService: people (units and users).
#include <algorithm>
#include <set>

#include "domain/domain_keys.h"
#include "server/admin_service_internal.h"

namespace fieldsync::server {

// --- Units ------------------------------------------------------------------------------

grpc::ServerUnaryReactor* AdminServiceImpl::UpsertUnit(grpc::CallbackServerContext* context,
                                                       const v1::UpsertUnitRequest* request,
                                                       v1::UpsertUnitResponse* response) {
  return RunAdminChange(
      *ctx_, context, FIELDSYNC_METHOD_PATH(AdminService, UpsertUnit),
      [&](GuardedUnary&) -> absl::StatusOr<AdminChange> {
        auto validate = [&]() -> absl::StatusOr<v1::Unit> {
          if (!request->has_unit()) return Invalid("unit is required");
          v1::Unit unit = request->unit();
          if (unit.id().empty()) {
            unit.set_id(absl::StrCat("unit-", RandomHex(8)));
          } else {
            RETURN_IF_ERROR(IdField("unit.id", unit.id()));
          }
          RETURN_IF_ERROR(TextField("unit.name", unit.name(), true, kMaxNameBytes));
          if (!v1::UnitLevel_IsValid(unit.level())) {
            return Invalid(absl::StrCat("unit.level ", unit.level(), " is not a UnitLevel"));
          }
          if (!v1::UnitKind_IsValid(unit.kind())) {
            return Invalid(absl::StrCat("unit.kind ", unit.kind(), " is not a UnitKind"));
          }
          if (!unit.area_code().empty()) {
            if (!base::IsAreaCode(unit.area_code())) {
              return Invalid(absl::StrCat("unit.area_code must be a 12-digit area code, got '",
                                          unit.area_code().substr(0, 40), "'"));
            }
            ASSIGN_OR_RETURN(std::optional<v1::Area> area,
                             ctx_->directory->GetArea(unit.area_code()));
            if (!area.has_value()) {
              return absl::NotFoundError(
                  absl::StrCat("unit.area_code: no area ", unit.area_code(), " (import it first)"));
            }
          }
          if (!unit.parent_unit_id().empty()) {
            RETURN_IF_ERROR(IdField("unit.parent_unit_id", unit.parent_unit_id()));
            std::string next = unit.parent_unit_id();
            for (int depth = 0; !next.empty(); ++depth) {
              if (next == unit.id() || depth > 64) {
                return Invalid(absl::StrCat("unit.parent_unit_id ", unit.parent_unit_id(),
                                            " would make a cycle of parent units"));
              }
              ASSIGN_OR_RETURN(std::optional<v1::Unit> parent, ctx_->directory->GetUnit(next));
              if (!parent.has_value()) {
                if (next == unit.parent_unit_id()) {
                  return absl::NotFoundError(
                      absl::StrCat("unit.parent_unit_id: no unit '", unit.parent_unit_id(), "'"));
                }
                break;
              }
              next = parent->parent_unit_id();
            }
          }
          return unit;
        };
        absl::StatusOr<v1::Unit> unit = validate();
        if (!unit.ok()) return unit.status();
        ServerChange change;
        change.event.mutable_subject()->set_kind(v1::SUBJECT_KIND_UNIT);
        change.event.mutable_subject()->set_id(unit->id());
        change.event.set_area_code(unit->area_code());
        *change.event.mutable_unit_upserted()->mutable_unit() = *unit;
        // The domain's merge stores the unit (domain/reference.h), in this commit.
        *response->mutable_unit() = *unit;
        AdminChange out;
        out.changes.push_back(std::move(change));
        out.answer = [response](const std::vector<sync::LoggedEvent>& events) {
          response->set_offset(events.front().offset());
        };
        return out;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListUnits(grpc::CallbackServerContext* context,
                                                      const v1::ListUnitsRequest* request,
                                                      v1::ListUnitsResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, ListUnits));
  if (!call->admitted()) return call;
  absl::Status status = ValidatePrefix("scope_prefix", request->scope_prefix(), true);
  if (!status.ok()) {
    call->Finish(status);
    return call;
  }
  std::vector<v1::Unit> units;
  absl::StatusOr<IndexPage> page =
      ScanIndexPage(*ctx_->store, domain::keys::kUnitNamePrefix, request->page_token(),
                    ctx_->PageSize(request->page_size()), ctx_->settings.max_examined_records,
                    [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
                      std::string id(key.substr(key.rfind('\0') + 1));
                      ASSIGN_OR_RETURN(std::optional<v1::Unit> unit, ctx_->directory->GetUnit(id));
                      if (!unit.has_value()) return false;
                      if (unit->disabled() && !request->include_disabled()) return false;
                      if (!absl::StartsWith(unit->area_code(), request->scope_prefix()))
                        return false;
                      units.push_back(*std::move(unit));
                      return true;
                    });
  if (!page.ok()) {
    call->Finish(page.status());
    return call;
  }
  units.resize(page->entries.size());
  for (v1::Unit& unit : units) *response->add_units() = std::move(unit);
  response->set_next_page_token(page->next_page_token);
  call->Finish(absl::OkStatus());
  return call;
}

// --- Users ------------------------------------------------------------------------------

grpc::ServerUnaryReactor* AdminServiceImpl::UpsertUser(grpc::CallbackServerContext* context,
                                                       const v1::UpsertUserRequest* request,
                                                       v1::UpsertUserResponse* response) {
  return RunAdminChange(
      *ctx_, context, FIELDSYNC_METHOD_PATH(AdminService, UpsertUser),
      [&](GuardedUnary& call) -> absl::StatusOr<AdminChange> {
        const Principal& principal = call.principal();
        auto validate = [&]() -> absl::StatusOr<v1::User> {
          if (!request->has_user()) return Invalid("user is required");
          v1::User user = request->user();
          if (user.id().empty()) {
            user.set_id(absl::StrCat("u-", RandomHex(8)));
          } else {
            RETURN_IF_ERROR(IdField("user.id", user.id()));
            if (user.id() == kSystemUserId) {
              return Invalid(absl::StrCat("user.id '", user.id(), "' is reserved for the server"));
            }
          }
          RETURN_IF_ERROR(TextField("user.name", user.name(), true, kMaxNameBytes));
          if (!v1::Role_IsValid(user.role()) || user.role() == v1::ROLE_UNSPECIFIED) {
            return Invalid(
                "user.role is required: cadre, township_staff, county_staff, hq_analyst "
                "or admin");
          }
          if (!v1::CadreRank_IsValid(user.rank())) {
            return Invalid(absl::StrCat("user.rank ", user.rank(), " is not a CadreRank"));
          }
          bool cadre = user.role() == v1::ROLE_CADRE;
          if (cadre && user.rank() == v1::CADRE_RANK_UNSPECIFIED) {
            return Invalid("user.rank is required for a cadre");
          }
          if (!cadre && user.rank() != v1::CADRE_RANK_UNSPECIFIED) {
            return Invalid("user.rank is only for cadres");
          }
          if (user.unit_id().empty()) {
            if (cadre) return Invalid("user.unit_id is required for a cadre");
          } else {
            RETURN_IF_ERROR(IdField("user.unit_id", user.unit_id()));
            ASSIGN_OR_RETURN(std::optional<v1::Unit> unit,
                             ctx_->directory->GetUnit(user.unit_id()));
            if (!unit.has_value()) {
              return absl::NotFoundError(
                  absl::StrCat("user.unit_id: no unit '", user.unit_id(), "'"));
            }
          }
          // Area scope by role: staff name their townships (9 digits) or counties
          // (6); cadres get their scope from links, HQ and admins see everything.
          size_t digits = 0;
          v1::AreaLevel level = v1::AREA_LEVEL_UNSPECIFIED;
          if (user.role() == v1::ROLE_TOWNSHIP_STAFF) {
            digits = 9;
            level = v1::AREA_LEVEL_TOWNSHIP;
          } else if (user.role() == v1::ROLE_COUNTY_STAFF) {
            digits = 6;
            level = v1::AREA_LEVEL_COUNTY;
          }
          if (digits == 0 && user.scope_area_codes_size() > 0) {
            return Invalid(absl::StrCat(
                "user.scope_area_codes must be empty for role ", v1::Role_Name(user.role()),
                " (cadres' scope comes from links; HQ and admins see all)"));
          }
          if (digits > 0 && user.scope_area_codes_size() == 0) {
            return Invalid(absl::StrCat("user.scope_area_codes is required for role ",
                                        v1::Role_Name(user.role()), ": ", digits, "-digit ",
                                        LevelName(level), " prefixes"));
          }
          std::set<std::string> seen;
          for (const std::string& code : user.scope_area_codes()) {
            if (code.size() != digits || !base::IsDigits(code)) {
              return Invalid(absl::StrCat("user.scope_area_codes: '", code.substr(0, 40),
                                          "' is not a ", digits, "-digit ", LevelName(level),
                                          " prefix"));
            }
            if (!seen.insert(code).second) {
              return Invalid(absl::StrCat("user.scope_area_codes: ", code, " is listed twice"));
            }
            std::string full = code + std::string(12 - digits, '0');
            ASSIGN_OR_RETURN(std::optional<v1::Area> area, ctx_->directory->GetArea(full));
            if (!area.has_value() || area->level() != level) {
              return absl::NotFoundError(absl::StrCat("user.scope_area_codes: no ",
                                                      LevelName(level), " ", full,
                                                      " (import the areas first)"));
            }
          }
          if (!user.phone().empty()) {
            bool ok = user.phone().size() <= 20 &&
                      std::all_of(user.phone().begin(), user.phone().end(), [](char c) {
                        return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == ' ';
                      });
            if (!ok)
              return Invalid("user.phone must be at most 20 characters of digits, +, - and spaces");
          }
          if (user.id() == principal.user_id() &&
              (user.role() != v1::ROLE_ADMIN || user.disabled())) {
            return absl::FailedPreconditionError(
                "an admin may not demote or disable their own account; ask another admin");
          }
          return user;
        };
        absl::StatusOr<v1::User> user = validate();
        if (!user.ok()) return user.status();
        absl::StatusOr<std::string> area = ctx_->directory->AreaOfUser(*user);
        if (!area.ok()) return area.status();
        ServerChange change;
        change.event.mutable_subject()->set_kind(v1::SUBJECT_KIND_USER);
        change.event.mutable_subject()->set_id(user->id());
        change.event.set_area_code(*area);
        *change.event.mutable_user_upserted()->mutable_user() = *user;
        // The domain's merge stores the user (domain/reference.h), in this commit.
        *response->mutable_user() = *user;
        AdminChange out;
        out.changes.push_back(std::move(change));
        out.answer = [response](const std::vector<sync::LoggedEvent>& events) {
          response->set_offset(events.front().offset());
        };
        return out;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListUsers(grpc::CallbackServerContext* context,
                                                      const v1::ListUsersRequest* request,
                                                      v1::ListUsersResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, ListUsers));
  if (!call->admitted()) return call;
  absl::Status status = ValidatePrefix("scope_prefix", request->scope_prefix(), true);
  if (status.ok() && !v1::Role_IsValid(request->role())) {
    status = Invalid(absl::StrCat("role ", request->role(), " is not a Role"));
  }
  if (status.ok() && !request->unit_id().empty()) status = IdField("unit_id", request->unit_id());
  if (!status.ok()) {
    call->Finish(status);
    return call;
  }
  std::vector<v1::User> users;
  absl::StatusOr<IndexPage> page = ScanIndexPage(
      *ctx_->store, domain::keys::kUserNamePrefix, request->page_token(),
      ctx_->PageSize(request->page_size()), ctx_->settings.max_examined_records,
      [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
        std::string id(key.substr(key.rfind('\0') + 1));
        ASSIGN_OR_RETURN(std::optional<v1::User> user, ctx_->directory->GetUser(id));
        if (!user.has_value() || user->id() == kSystemUserId) return false;
        if (user->disabled() && !request->include_disabled()) return false;
        if (request->role() != v1::ROLE_UNSPECIFIED && user->role() != request->role()) {
          return false;
        }
        if (!request->unit_id().empty() && user->unit_id() != request->unit_id()) return false;
        if (!request->scope_prefix().empty() &&
            std::none_of(user->scope_area_codes().begin(), user->scope_area_codes().end(),
                         [&](const std::string& code) {
                           return absl::StartsWith(code, request->scope_prefix());
                         })) {
          return false;
        }
        users.push_back(*std::move(user));
        return true;
      });
  if (!page.ok()) {
    call->Finish(page.status());
    return call;
  }
  users.resize(page->entries.size());
  for (v1::User& user : users) *response->add_users() = std::move(user);
  response->set_next_page_token(page->next_page_token);
  call->Finish(absl::OkStatus());
  return call;
}

}  // namespace fieldsync::server
