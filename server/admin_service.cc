#include "server/admin_service.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "domain/domain_keys.h"
#include "domain/links.h"
#include "storage/sha256.h"
#include "storage/status_macros.h"
#include "sync/event_codec.h"

namespace fieldsync::server {
namespace {

constexpr size_t kMaxImportErrors = 100;
// Areas per AreaImported event are cut so each event stays well under the
// default limits.max_event_bytes (64 KiB).
constexpr size_t kMaxAreaPartBytes = 48 * 1024;
constexpr size_t kMaxNameBytes = 200;
constexpr size_t kMaxReasonBytes = 1000;

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

absl::Status TextField(std::string_view field, const std::string& value, bool required,
                       size_t max_bytes) {
  if (value.empty()) {
    return required ? Invalid(absl::StrCat(std::string(field), " is required")) : absl::OkStatus();
  }
  if (!IsCleanText(value, max_bytes)) {
    return Invalid(absl::StrCat(std::string(field),
                                " must be UTF-8 text without control characters, at most ",
                                max_bytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status IdField(std::string_view field, const std::string& value) {
  if (value.empty()) return Invalid(absl::StrCat(std::string(field), " is required"));
  if (!IsValidId(value)) {
    return Invalid(absl::StrCat(std::string(field), " must match [A-Za-z0-9._:-]{1,64}, got '",
                                value.substr(0, 80), "'"));
  }
  return absl::OkStatus();
}

std::string LevelName(v1::AreaLevel level) {
  std::string name = v1::AreaLevel_Name(level);
  if (absl::StartsWith(name, "AREA_LEVEL_")) name = name.substr(11);
  return absl::AsciiStrToLower(name);
}

std::optional<v1::AreaLevel> ParseLevel(std::string_view text) {
  for (v1::AreaLevel level :
       {v1::AREA_LEVEL_PROVINCE, v1::AREA_LEVEL_CITY, v1::AREA_LEVEL_COUNTY,
        v1::AREA_LEVEL_TOWNSHIP, v1::AREA_LEVEL_VILLAGE, v1::AREA_LEVEL_GROUP}) {
    if (text == LevelName(level)) return level;
  }
  return std::nullopt;
}

// The digits before an area level's own segment (province 0, city 2...).
int ParentDigits(v1::AreaLevel level) {
  switch (level) {
    case v1::AREA_LEVEL_CITY:
      return 2;
    case v1::AREA_LEVEL_COUNTY:
      return 4;
    case v1::AREA_LEVEL_TOWNSHIP:
      return 6;
    case v1::AREA_LEVEL_VILLAGE:
      return 9;
    default:
      return 0;
  }
}

// A code fits its level: 12 digits (groups: 13 to 20, under their village),
// zeros after the level's significant digits, and a non-zero own segment.
std::optional<std::string> CodeProblem(const std::string& code, v1::AreaLevel level) {
  if (!IsDigits(code)) return absl::StrCat("code '", code.substr(0, 40), "' is not all digits");
  if (level == v1::AREA_LEVEL_GROUP) {
    if (code.size() <= 12 || code.size() > 20) {
      return absl::StrCat("group code '", code, "' must be 13 to 20 digits (village code + group)");
    }
    return std::nullopt;
  }
  if (code.size() != 12) return absl::StrCat("code '", code, "' is not 12 digits");
  int significant = SignificantDigits(level);
  if (code.find_first_not_of('0', significant) != std::string::npos) {
    return absl::StrCat("code '", code, "' of a ", LevelName(level), " must end in ",
                        12 - significant, " zeros");
  }
  int own = ParentDigits(level);
  if (code.find_first_not_of('0', own) >= static_cast<size_t>(significant)) {
    return absl::StrCat("code '", code, "' of a ", LevelName(level), " has digits ", own + 1, "-",
                        significant, " all zero");
  }
  return std::nullopt;
}

// Splits one CSV record into fields (RFC 4180 quotes; a quote inside a quoted
// field is doubled). nullopt for an unterminated quote.
std::optional<std::vector<std::string>> SplitCsvLine(std::string_view line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          fields.back().push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        fields.back().push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back().push_back(c);
    }
  }
  if (quoted) return std::nullopt;
  for (std::string& field : fields) {
    field = std::string(absl::StripAsciiWhitespace(field));
  }
  return fields;
}

// Shared pieces of the link RPCs.
struct Holder {
  bool cadre = false;
  std::string id;
};

v1::Link Presented(v1::Link link, const v1::Date& today) {
  link.set_active(LinkActive(link, today));
  return link;
}

}  // namespace

// --- CSV ------------------------------------------------------------------------------------

std::vector<AreaRow> ParseAreaCsv(
    std::string_view csv, size_t max_errors,
    const std::function<absl::StatusOr<std::optional<v1::AreaLevel>>(const std::string& code)>&
        known_area,
    std::vector<v1::ImportError>* errors, absl::Status* store_error) {
  size_t error_count = 0;
  auto error = [&](uint32_t line, std::string message) {
    ++error_count;
    if (errors->size() < max_errors) {
      v1::ImportError e;
      e.set_line(line);
      e.set_message(std::move(message));
      errors->push_back(std::move(e));
    }
  };
  absl::string_view text(csv.data(), csv.size());
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);

  std::vector<AreaRow> rows;
  std::map<std::string, size_t> by_code;  // code -> index in rows
  uint32_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::optional<std::vector<std::string>> fields =
        SplitCsvLine(std::string_view(line.data(), line.size()));
    if (!fields.has_value()) {
      error(line_number, "unterminated quoted field");
      continue;
    }
    if (rows.empty() && by_code.empty() && line_number == 1 && (*fields)[0] == "code") {
      continue;  // The header.
    }
    if (fields->size() != 4 && fields->size() != 5) {
      error(line_number,
            absl::StrCat("expected 4 or 5 columns (code,parent,level,name[,poor]), got ",
                         fields->size()));
      continue;
    }
    const std::string& code = (*fields)[0];
    const std::string& parent = (*fields)[1];
    std::optional<v1::AreaLevel> level = ParseLevel((*fields)[2]);
    if (!level.has_value()) {
      error(line_number, absl::StrCat("unknown level '", (*fields)[2].substr(0, 40),
                                      "' (province|city|county|township|village|group)"));
      continue;
    }
    if (std::optional<std::string> problem = CodeProblem(code, *level)) {
      error(line_number, *problem);
      continue;
    }
    if (!parent.empty() && !IsDigits(parent)) {
      error(line_number, absl::StrCat("parent '", parent.substr(0, 40), "' is not all digits"));
      continue;
    }
    if ((*level == v1::AREA_LEVEL_PROVINCE) != parent.empty()) {
      error(line_number, *level == v1::AREA_LEVEL_PROVINCE
                             ? "a province has no parent"
                             : absl::StrCat("a ", LevelName(*level), " needs a parent"));
      continue;
    }
    const std::string& name = (*fields)[3];
    if (!IsCleanText(name, kMaxNameBytes)) {
      error(line_number, absl::StrCat("name must be UTF-8 text without control characters, 1 to ",
                                      kMaxNameBytes, " bytes"));
      continue;
    }
    bool poor = false;
    if (fields->size() == 5) {
      const std::string& flag = (*fields)[4];
      if (flag == "1") {
        poor = true;
      } else if (!flag.empty() && flag != "0") {
        error(line_number, absl::StrCat("poor must be 0 or 1, got '", flag.substr(0, 40), "'"));
        continue;
      }
    }
    auto [it, inserted] = by_code.try_emplace(code, rows.size());
    if (!inserted) {
      error(line_number,
            absl::StrCat("code ", code, " is already on line ", rows[it->second].line));
      continue;
    }
    AreaRow row;
    row.line = line_number;
    row.area.set_code(code);
    row.area.set_parent_code(parent);
    row.area.set_level(*level);
    row.area.set_name(name);
    row.area.set_designated_poor(poor);
    rows.push_back(std::move(row));
  }

  // Parents: in the file (any line) or already in the store, one level up the
  // tree, and a prefix of the child's code.
  for (const AreaRow& row : rows) {
    const v1::Area& area = row.area;
    if (area.parent_code().empty()) continue;
    std::optional<v1::AreaLevel> parent_level;
    std::string parent_prefix;
    if (auto it = by_code.find(area.parent_code()); it != by_code.end()) {
      parent_level = rows[it->second].area.level();
      parent_prefix = AreaPrefix(rows[it->second].area);
    } else {
      absl::StatusOr<std::optional<v1::AreaLevel>> stored = known_area(area.parent_code());
      if (!stored.ok()) {
        *store_error = stored.status();
        return {};
      }
      if (!stored->has_value()) {
        error(row.line, absl::StrCat("parent ", area.parent_code(),
                                     " is neither in the file nor already imported"));
        continue;
      }
      parent_level = **stored;
      v1::Area parent;
      parent.set_code(area.parent_code());
      parent.set_level(*parent_level);
      parent_prefix = AreaPrefix(parent);
    }
    if (*parent_level >= area.level()) {
      error(row.line,
            absl::StrCat("parent ", area.parent_code(), " is a ", LevelName(*parent_level),
                         ", not above a ", LevelName(area.level())));
      continue;
    }
    if (area.level() == v1::AREA_LEVEL_GROUP && *parent_level != v1::AREA_LEVEL_VILLAGE) {
      error(row.line, "a group's parent must be a village");
      continue;
    }
    if (!absl::StartsWith(area.code(), parent_prefix)) {
      error(row.line, absl::StrCat("code ", area.code(),
                                   " does not start with its parent's prefix ", parent_prefix));
      continue;
    }
  }
  if (error_count > errors->size()) {
    v1::ImportError more;
    more.set_line(0);
    more.set_message(absl::StrCat(error_count - errors->size(), " more errors not shown"));
    errors->push_back(std::move(more));
  }
  return rows;
}

// --- Areas --------------------------------------------------------------------------------

grpc::ServerUnaryReactor* AdminServiceImpl::ImportAreas(grpc::CallbackServerContext* context,
                                                        const v1::ImportAreasRequest* request,
                                                        v1::ImportAreasResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, ImportAreas));
  if (!call->admitted()) return call;
  if (request->csv().empty()) {
    call->Finish(Invalid("csv is required"));
    return call;
  }
  std::vector<v1::ImportError> errors;
  absl::Status store_error;
  const Directory* directory = ctx_->directory;
  std::vector<AreaRow> rows = ParseAreaCsv(
      request->csv(), kMaxImportErrors,
      [directory](const std::string& code) -> absl::StatusOr<std::optional<v1::AreaLevel>> {
        ASSIGN_OR_RETURN(std::optional<v1::Area> area, directory->GetArea(code));
        if (!area.has_value()) return std::nullopt;
        return area->level();
      },
      &errors, &store_error);
  if (!store_error.ok()) {
    call->Finish(store_error);
    return call;
  }
  if (!errors.empty()) {
    for (v1::ImportError& e : errors) *response->add_errors() = std::move(e);
    call->Finish(absl::OkStatus());
    return call;
  }
  if (rows.empty()) {
    call->Finish(Invalid("csv holds no area lines"));
    return call;
  }

  // Compare with the store: what is new, what changed.
  std::vector<v1::Area> changed;
  uint32_t created = 0, updated = 0, unchanged = 0;
  for (const AreaRow& row : rows) {
    absl::StatusOr<std::optional<v1::Area>> stored = directory->GetArea(row.area.code());
    if (!stored.ok()) {
      call->Finish(stored.status());
      return call;
    }
    if (!stored->has_value()) {
      ++created;
    } else if ((*stored)->SerializeAsString() == row.area.SerializeAsString()) {
      ++unchanged;
      continue;
    } else {
      ++updated;
    }
    changed.push_back(row.area);
  }
  response->set_created(created);
  response->set_updated(updated);
  response->set_unchanged(unchanged);
  if (request->dry_run()) {
    call->Finish(absl::OkStatus());
    return call;
  }
  std::string import_id = NewUuid();
  response->set_import_id(import_id);
  if (changed.empty()) {
    call->Finish(absl::OkStatus());
    return call;
  }

  // The root: the first area whose parent is not in the file.
  std::set<std::string> in_file;
  for (const AreaRow& row : rows) in_file.insert(row.area.code());
  const v1::Area* root = &rows.front().area;
  for (const AreaRow& row : rows) {
    if (row.area.parent_code().empty() || in_file.count(row.area.parent_code()) == 0) {
      root = &row.area;
      break;
    }
  }
  v1::SubjectRef subject;
  subject.set_kind(root->level() == v1::AREA_LEVEL_VILLAGE ? v1::SUBJECT_KIND_VILLAGE
                                                           : v1::SUBJECT_KIND_AREA);
  subject.set_id(root->code());
  std::string area_code = root->code().substr(0, 12);

  std::vector<std::vector<v1::Area>> parts(1);
  size_t part_bytes = 0;
  for (v1::Area& area : changed) {
    size_t bytes = area.ByteSizeLong() + 4;
    if (!parts.back().empty() && part_bytes + bytes > kMaxAreaPartBytes) {
      parts.emplace_back();
      part_bytes = 0;
    }
    part_bytes += bytes;
    parts.back().push_back(std::move(area));
  }
  std::string source_sha = storage::DigestBytes(storage::Sha256({request->csv()}));
  std::vector<ServerChange> changes;
  for (size_t i = 0; i < parts.size(); ++i) {
    ServerChange change;
    *change.event.mutable_subject() = subject;
    change.event.set_area_code(area_code);
    v1::AreaImported* body = change.event.mutable_area_imported();
    body->set_import_id(import_id);
    body->set_part(static_cast<uint32_t>(i + 1));
    body->set_part_count(static_cast<uint32_t>(parts.size()));
    body->set_source_sha256(source_sha);
    for (v1::Area& area : parts[i]) *body->add_areas() = std::move(area);
    change.apply = [](storage::CommitContext& cctx, const v1::StoredEvent& stored) {
      for (const v1::Area& area : stored.event().area_imported().areas()) {
        RETURN_IF_ERROR(WriteArea(cctx, area));
      }
      return absl::OkStatus();
    };
    changes.push_back(std::move(change));
  }
  ctx_->identity->AppendAsync(
      call->principal().user_id(), std::move(changes),
      [call, response](absl::StatusOr<std::vector<v1::StoredEvent>> events) {
        if (!events.ok()) {
          response->clear_import_id();
          return call->Finish(events.status());
        }
        response->set_last_offset(events->back().offset());
        call->Finish(absl::OkStatus());
      });
  return call;
}

// --- Units ------------------------------------------------------------------------------

grpc::ServerUnaryReactor* AdminServiceImpl::UpsertUnit(grpc::CallbackServerContext* context,
                                                       const v1::UpsertUnitRequest* request,
                                                       v1::UpsertUnitResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, UpsertUnit));
  if (!call->admitted()) return call;
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
      if (unit.area_code().size() != 12 || !IsDigits(unit.area_code())) {
        return Invalid(absl::StrCat("unit.area_code must be a 12-digit area code, got '",
                                    unit.area_code().substr(0, 40), "'"));
      }
      ASSIGN_OR_RETURN(std::optional<v1::Area> area, ctx_->directory->GetArea(unit.area_code()));
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
  if (!unit.ok()) {
    call->Finish(unit.status());
    return call;
  }
  ServerChange change;
  change.event.mutable_subject()->set_kind(v1::SUBJECT_KIND_UNIT);
  change.event.mutable_subject()->set_id(unit->id());
  change.event.set_area_code(unit->area_code());
  *change.event.mutable_unit_upserted()->mutable_unit() = *unit;
  change.apply = [](storage::CommitContext& cctx, const v1::StoredEvent& stored) {
    return WriteUnit(cctx, stored.event().unit_upserted().unit());
  };
  *response->mutable_unit() = *unit;
  std::vector<ServerChange> changes;
  changes.push_back(std::move(change));
  ctx_->identity->AppendAsync(
      call->principal().user_id(), std::move(changes),
      [call, response](absl::StatusOr<std::vector<v1::StoredEvent>> events) {
        if (!events.ok()) return call->Finish(events.status());
        response->set_offset(events->front().offset());
        call->Finish(absl::OkStatus());
      });
  return call;
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
      ScanIndexPage(*ctx_->store, dir_keys::kUnitNamePrefix, request->page_token(),
                    ctx_->PageSize(request->page_size()),
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
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, UpsertUser));
  if (!call->admitted()) return call;
  const Principal& principal = call->principal();
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
      ASSIGN_OR_RETURN(std::optional<v1::Unit> unit, ctx_->directory->GetUnit(user.unit_id()));
      if (!unit.has_value()) {
        return absl::NotFoundError(absl::StrCat("user.unit_id: no unit '", user.unit_id(), "'"));
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
      return Invalid(absl::StrCat("user.scope_area_codes must be empty for role ",
                                  v1::Role_Name(user.role()),
                                  " (cadres' scope comes from links; HQ and admins see all)"));
    }
    if (digits > 0 && user.scope_area_codes_size() == 0) {
      return Invalid(absl::StrCat("user.scope_area_codes is required for role ",
                                  v1::Role_Name(user.role()), ": ", digits, "-digit ",
                                  LevelName(level), " prefixes"));
    }
    std::set<std::string> seen;
    for (const std::string& code : user.scope_area_codes()) {
      if (code.size() != digits || !IsDigits(code)) {
        return Invalid(absl::StrCat("user.scope_area_codes: '", code.substr(0, 40), "' is not a ",
                                    digits, "-digit ", LevelName(level), " prefix"));
      }
      if (!seen.insert(code).second) {
        return Invalid(absl::StrCat("user.scope_area_codes: ", code, " is listed twice"));
      }
      std::string full = code + std::string(12 - digits, '0');
      ASSIGN_OR_RETURN(std::optional<v1::Area> area, ctx_->directory->GetArea(full));
      if (!area.has_value() || area->level() != level) {
        return absl::NotFoundError(absl::StrCat("user.scope_area_codes: no ", LevelName(level), " ",
                                                full, " (import the areas first)"));
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
    if (user.id() == principal.user_id() && (user.role() != v1::ROLE_ADMIN || user.disabled())) {
      return absl::FailedPreconditionError(
          "an admin may not demote or disable their own account; ask another admin");
    }
    return user;
  };
  absl::StatusOr<v1::User> user = validate();
  if (!user.ok()) {
    call->Finish(user.status());
    return call;
  }
  absl::StatusOr<std::string> area = ctx_->directory->AreaOfUser(*user);
  if (!area.ok()) {
    call->Finish(area.status());
    return call;
  }
  ServerChange change;
  change.event.mutable_subject()->set_kind(v1::SUBJECT_KIND_USER);
  change.event.mutable_subject()->set_id(user->id());
  change.event.set_area_code(*area);
  *change.event.mutable_user_upserted()->mutable_user() = *user;
  change.apply = [](storage::CommitContext& cctx, const v1::StoredEvent& stored) {
    return WriteUser(cctx, stored.event().user_upserted().user());
  };
  *response->mutable_user() = *user;
  std::vector<ServerChange> changes;
  changes.push_back(std::move(change));
  ctx_->identity->AppendAsync(
      principal.user_id(), std::move(changes),
      [call, response](absl::StatusOr<std::vector<v1::StoredEvent>> events) {
        if (!events.ok()) return call->Finish(events.status());
        response->set_offset(events->front().offset());
        call->Finish(absl::OkStatus());
      });
  return call;
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
      *ctx_->store, dir_keys::kUserNamePrefix, request->page_token(),
      ctx_->PageSize(request->page_size()),
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
  if (is_cadre) {
    ASSIGN_OR_RETURN(std::optional<v1::User> user, directory.GetUser(holder.id));
    if (!user.has_value()) return absl::NotFoundError(absl::StrCat("no user '", holder.id, "'"));
    if (user->role() != v1::ROLE_CADRE) {
      return Invalid(absl::StrCat("user ", holder.id, " is not a cadre"));
    }
    if (user->disabled()) {
      return absl::FailedPreconditionError(absl::StrCat("cadre ", holder.id, " is disabled"));
    }
  } else {
    ASSIGN_OR_RETURN(std::optional<v1::Unit> unit, directory.GetUnit(holder.id));
    if (!unit.has_value()) return absl::NotFoundError(absl::StrCat("no unit '", holder.id, "'"));
    if (unit->disabled()) {
      return absl::FailedPreconditionError(absl::StrCat("unit ", holder.id, " is disabled"));
    }
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
  if (!IsValidDate(date)) {
    return Invalid(absl::StrCat(std::string(field), " ", date.year(), "-", date.month(), "-",
                                date.day(), " is not a valid date"));
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
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, StartLink));
  if (!call->admitted()) return call;
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
    if (!v1::LinkRole_IsValid(request->role()) || request->role() == v1::LINK_ROLE_UNSPECIFIED) {
      return Invalid("role is required (a LinkRole)");
    }
    ASSIGN_OR_RETURN(auto target, LocateTarget(directory, request->target()));
    // Scope: the target must be in the caller's scope (county staff: their county).
    ASSIGN_OR_RETURN(Scope scope, directory.ComputeScope(call->principal().user));
    if (!sync::CoversArea(scope, target.second)) {
      return OutOfScope(call->principal(),
                        absl::StrCat("link target ", sync::SubjectKey(request->target())));
    }
    ASSIGN_OR_RETURN(Holder holder,
                     CheckHolder(directory, "", request->has_cadre_id(), request->has_unit_id(),
                                 request->cadre_id(), request->unit_id()));
    if (!domain::FitLinkRole(request->role(), holder.cadre, request->target().kind()).ok()) {
      return Invalid(absl::StrCat("role ", v1::LinkRole_Name(request->role()), " does not fit a ",
                                  holder.cadre ? "cadre" : "unit", " linked to a ",
                                  v1::LinkTargetKind_Name(target.first)));
    }
    ASSIGN_OR_RETURN(
        v1::Date valid_from,
        DateOrToday(directory, "valid_from", request->has_valid_from(), request->valid_from()));
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
  if (!link.ok()) {
    call->Finish(link.status());
    return call;
  }
  std::vector<ServerChange> changes;
  changes.push_back(LinkStartedChange(*link, call->principal().role()));
  v1::Date today = directory.Today();
  ctx_->identity->AppendAsync(
      call->principal().user_id(), std::move(changes),
      [call, response, link = *std::move(link),
       today](absl::StatusOr<std::vector<v1::StoredEvent>> events) mutable {
        if (!events.ok()) return call->Finish(events.status());
        // The link as the domain's merge recorded it.
        link.set_started_offset(events->front().offset());
        *response->mutable_link() = Presented(std::move(link), today);
        response->set_offset(events->front().offset());
        call->Finish(absl::OkStatus());
      });
  return call;
}

grpc::ServerUnaryReactor* AdminServiceImpl::EndLink(grpc::CallbackServerContext* context,
                                                    const v1::EndLinkRequest* request,
                                                    v1::EndLinkResponse* response) {
  auto* call = new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, EndLink));
  if (!call->admitted()) return call;
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
    ASSIGN_OR_RETURN(Scope scope, directory.ComputeScope(call->principal().user));
    if (!sync::CoversArea(scope, old->area_code())) {
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
                              request->reason() == v1::LINK_END_REASON_OTHER, kMaxReasonBytes));
    Plan plan;
    ASSIGN_OR_RETURN(plan.valid_to, DateOrToday(directory, "valid_to", request->has_valid_to(),
                                                request->valid_to()));
    if (DateNumber(plan.valid_to) < DateNumber(old->valid_from())) {
      return Invalid(absl::StrCat("valid_to ", DateNumber(plan.valid_to),
                                  " is before the link's valid_from ",
                                  DateNumber(old->valid_from())));
    }
    const v1::LinkReplacement& r = request->replacement();
    bool has_replacement = request->has_replacement();
    if (request->reason() == v1::LINK_END_REASON_REPLACED && !has_replacement) {
      return Invalid("reason REPLACED needs a replacement (the target is never left unlinked)");
    }
    if (has_replacement) {
      ASSIGN_OR_RETURN(Holder holder, CheckHolder(directory, "replacement.", r.has_cadre_id(),
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
                       r.has_valid_from()
                           ? DateOrToday(directory, "replacement.valid_from", true, r.valid_from())
                           : absl::StatusOr<v1::Date>(day_after));
      if (DateNumber(valid_from) > DateNumber(day_after)) {
        return Invalid(absl::StrCat("replacement.valid_from ", DateNumber(valid_from),
                                    " leaves a gap after valid_to ", DateNumber(plan.valid_to)));
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
  if (!plan.ok()) {
    call->Finish(plan.status());
    return call;
  }
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
  ctx_->identity->AppendAsync(
      call->principal().user_id(), std::move(changes),
      [call, response, ended = std::move(ended), replacement = std::move(plan->replacement),
       today](absl::StatusOr<std::vector<v1::StoredEvent>> events) mutable {
        if (!events.ok()) return call->Finish(events.status());
        ended.set_ended_offset(events->front().offset());
        *response->mutable_ended() = Presented(std::move(ended), today);
        if (replacement.has_value()) {
          replacement->set_started_offset(events->back().offset());
          *response->mutable_replacement() = Presented(*std::move(replacement), today);
        }
        response->set_offset(events->back().offset());
        call->Finish(absl::OkStatus());
      });
  return call;
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
    ASSIGN_OR_RETURN(Scope scope, directory.ComputeScope(call->principal().user));
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
            *ctx_->store, prefix, request->page_token(), ctx_->PageSize(request->page_size()),
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

// --- Enrollment and devices -----------------------------------------------------------------

grpc::ServerUnaryReactor* AdminServiceImpl::IssueEnrollmentCode(
    grpc::CallbackServerContext* context, const v1::IssueEnrollmentCodeRequest* request,
    v1::IssueEnrollmentCodeResponse* response) {
  auto* call = new GuardedUnary(ctx_->guard, context,
                                FIELDSYNC_METHOD_PATH(AdminService, IssueEnrollmentCode));
  if (!call->admitted()) return call;
  absl::Status status = IdField("user_id", request->user_id());
  absl::Duration ttl = ctx_->settings.enrollment_code_ttl;
  if (status.ok() && request->has_ttl()) {
    const auto& d = request->ttl();
    if (d.seconds() < 0 || d.nanos() < 0 || d.nanos() >= 1000000000 ||
        (d.seconds() == 0 && d.nanos() == 0)) {
      status = Invalid("ttl must be a positive duration");
    }
    ttl = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  }
  if (!status.ok()) {
    call->Finish(status);
    return call;
  }
  ttl = std::min(ttl, ctx_->settings.max_enrollment_code_ttl);
  ctx_->identity->IssueEnrollmentCode(call->principal().user_id(), request->user_id(), ttl,
                                      [call, response](absl::StatusOr<IssuedCode> issued) {
                                        if (!issued.ok()) return call->Finish(issued.status());
                                        response->set_code(issued->code);
                                        *response->mutable_expires_at() =
                                            ToTimestamp(issued->expires_at);
                                        response->set_user_id(issued->event.event().subject().id());
                                        response->set_code_id(issued->code_id);
                                        call->Finish(absl::OkStatus());
                                      });
  return call;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListDevices(grpc::CallbackServerContext* context,
                                                        const v1::ListDevicesRequest* request,
                                                        v1::ListDevicesResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, ListDevices));
  if (!call->admitted()) return call;
  auto list = [&]() -> absl::Status {
    std::string prefix(dir_keys::kDeviceTimePrefix);
    if (!request->user_id().empty()) {
      RETURN_IF_ERROR(IdField("user_id", request->user_id()));
      prefix = dir_keys::DeviceUserPrefix(request->user_id());
    }
    std::vector<v1::Device> devices;
    ASSIGN_OR_RETURN(
        IndexPage page,
        ScanIndexPage(
            *ctx_->store, prefix, request->page_token(), ctx_->PageSize(request->page_size()),
            [&](std::string_view key, std::string_view) -> absl::StatusOr<bool> {
              ASSIGN_OR_RETURN(
                  std::optional<v1::Device> device,
                  ctx_->directory->GetDevice(std::string(key.substr(key.rfind('\0') + 1))));
              if (!device.has_value()) return false;
              if (device->revoked() && !request->include_revoked()) return false;
              devices.push_back(*std::move(device));
              return true;
            }));
    devices.resize(page.entries.size());
    for (v1::Device& device : devices) *response->add_devices() = std::move(device);
    response->set_next_page_token(page.next_page_token);
    return absl::OkStatus();
  };
  call->Finish(list());
  return call;
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeDevice(grpc::CallbackServerContext* context,
                                                         const v1::RevokeDeviceRequest* request,
                                                         v1::RevokeDeviceResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, RevokeDevice));
  if (!call->admitted()) return call;
  absl::Status status = IdField("device_id", request->device_id());
  if (status.ok()) status = TextField("reason", request->reason(), true, kMaxReasonBytes);
  if (status.ok() && request->device_id() == call->principal().device_id()) {
    status = absl::FailedPreconditionError(
        "cannot revoke the device of the calling token; use another admin device");
  }
  if (!status.ok()) {
    call->Finish(status);
    return call;
  }
  ctx_->identity->RevokeDevice(
      call->principal().user_id(), request->device_id(), request->reason(),
      [call, response](absl::StatusOr<std::pair<v1::Device, uint64_t>> revoked) {
        if (!revoked.ok()) return call->Finish(revoked.status());
        *response->mutable_device() = revoked->first;
        response->set_offset(revoked->second);
        call->Finish(absl::OkStatus());
      });
  return call;
}

// --- Backups ----------------------------------------------------------------------------

namespace {

constexpr absl::string_view kBackupInfoPrefix = "fieldsync-backup-";
constexpr absl::string_view kBackupInfoSuffix = ".pb";

// Backup metadata lives next to the backups (fieldsync-backup-<id>.pb), so it
// travels with them.
absl::Status WriteBackupInfo(const std::string& dir, const v1::BackupInfo& info) {
  std::filesystem::path path = std::filesystem::path(dir) /
                               absl::StrCat(kBackupInfoPrefix, info.backup_id(), kBackupInfoSuffix);
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !info.SerializeToOstream(&out)) {
      return absl::InternalError(absl::StrCat("cannot write ", tmp.string()));
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(), ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::CreateBackup(grpc::CallbackServerContext* context,
                                                         const v1::CreateBackupRequest* request,
                                                         v1::CreateBackupResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, CreateBackup));
  if (!call->admitted()) return call;
  absl::Status status = TextField("label", request->label(), false, kMaxNameBytes);
  if (!status.ok()) {
    call->Finish(status);
    return call;
  }
  std::string label = request->label();
  const ServiceContext* ctx = ctx_;
  // A backup copies the database: run it off the gRPC threads.
  ctx_->worker->Run([call, response, label, ctx] {
    auto backup = [&]() -> absl::Status {
      const std::string& dir = ctx->settings.backup_dir;
      ASSIGN_OR_RETURN(storage::BackupInfo info, ctx->store->Backup(dir));
      v1::BackupInfo out;
      out.set_backup_id(absl::StrCat(info.backup_id));
      out.set_path(
          (std::filesystem::path(dir) / "private" / absl::StrCat(info.backup_id)).string());
      out.set_head_offset(info.head);
      if (info.head > 0) {
        ASSIGN_OR_RETURN(storage::LogRecord record, ctx->store->Read(info.head));
        out.set_head_hash(record.hash);
      }
      *out.mutable_created_at() = ToTimestamp(ctx->clock());
      out.set_size_bytes(info.size_bytes);
      out.set_label(label);
      RETURN_IF_ERROR(WriteBackupInfo(dir, out));
      *response->mutable_backup() = std::move(out);
      return absl::OkStatus();
    };
    call->Finish(backup());
  });
  return call;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListBackups(grpc::CallbackServerContext* context,
                                                        const v1::ListBackupsRequest*,
                                                        v1::ListBackupsResponse* response) {
  auto* call =
      new GuardedUnary(ctx_->guard, context, FIELDSYNC_METHOD_PATH(AdminService, ListBackups));
  if (!call->admitted()) return call;
  auto list = [&]() -> absl::Status {
    std::vector<v1::BackupInfo> backups;
    std::error_code error;
    std::filesystem::directory_iterator it(ctx_->settings.backup_dir, error);
    if (error) {
      if (error == std::errc::no_such_file_or_directory) return absl::OkStatus();
      return absl::InternalError(
          absl::StrCat("cannot read ", ctx_->settings.backup_dir, ": ", error.message()));
    }
    for (const auto& entry : it) {
      std::string name = entry.path().filename().string();
      if (!absl::StartsWith(name, kBackupInfoPrefix) || !absl::EndsWith(name, kBackupInfoSuffix)) {
        continue;
      }
      std::ifstream in(entry.path(), std::ios::binary);
      v1::BackupInfo info;
      if (!in || !info.ParseFromIstream(&in)) {
        return absl::DataLossError(
            absl::StrCat("backup metadata ", entry.path().string(), " does not parse"));
      }
      backups.push_back(std::move(info));
    }
    std::sort(backups.begin(), backups.end(), [](const v1::BackupInfo& a, const v1::BackupInfo& b) {
      return std::make_pair(a.created_at().seconds(), a.created_at().nanos()) >
             std::make_pair(b.created_at().seconds(), b.created_at().nanos());
    });
    for (v1::BackupInfo& info : backups) *response->add_backups() = std::move(info);
    return absl::OkStatus();
  };
  call->Finish(list());
  return call;
}

}  // namespace fieldsync::server
