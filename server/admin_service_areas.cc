// AdminService: areas (ImportAreas and its CSV parser).
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "server/admin_service_internal.h"
#include "storage/sha256.h"

namespace fieldsync::server {

namespace {

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
  const std::optional<base::AreaLevel> base_level = BaseAreaLevel(level);
  return base_level ? static_cast<int>(base::ParentDigits(*base_level)) : 0;
}

// A code fits its level: 12 digits (groups: 13 to 20, under their village),
// zeros after the level's significant digits, and a non-zero own segment.
std::optional<std::string> CodeProblem(const std::string& code, v1::AreaLevel level) {
  if (!base::IsDigits(code)) return absl::StrCat("code '", code.substr(0, 40), "' is not all digits");
  if (level == v1::AREA_LEVEL_GROUP) {
    if (code.size() <= 12 || code.size() > 20) {
      return absl::StrCat("group code '", code, "' must be 13 to 20 digits (village code + group)");
    }
    return std::nullopt;
  }
  if (code.size() != base::kAreaCodeDigits)
    return absl::StrCat("code '", code, "' is not 12 digits");
  int significant = SignificantDigits(level);
  if (code.find_first_not_of('0', significant) != std::string::npos) {
    return absl::StrCat("code '", code, "' of a ", LevelName(level), " must end in ",
                        base::kAreaCodeDigits - significant, " zeros");
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
    if (!parent.empty() && !base::IsDigits(parent)) {
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
    if (!base::IsCleanText(name, kMaxNameBytes)) {
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
  return RunAdminChange(
      *ctx_, context, FIELDSYNC_METHOD_PATH(AdminService, ImportAreas),
      [&](GuardedUnary&) -> absl::StatusOr<AdminChange> {
        if (request->csv().empty()) return Invalid("csv is required");
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
        if (!store_error.ok()) return store_error;
        if (!errors.empty()) {
          // Nothing is imported; the answer lists the lines to fix.
          for (v1::ImportError& e : errors) *response->add_errors() = std::move(e);
          return AdminChange{};
        }
        if (rows.empty()) return Invalid("csv holds no area lines");

        // Compare with the store: what is new, what changed.
        std::vector<v1::Area> changed;
        uint32_t created = 0, updated = 0, unchanged = 0;
        for (const AreaRow& row : rows) {
          absl::StatusOr<std::optional<v1::Area>> stored = directory->GetArea(row.area.code());
          if (!stored.ok()) return stored.status();
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
        if (request->dry_run()) return AdminChange{};
        std::string import_id = NewUuid();
        response->set_import_id(import_id);
        if (changed.empty()) return AdminChange{};

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
        AdminChange out;
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
          // No projection writes of our own: the domain's merge, run by the
          // engine in the same commit, stores the areas (domain/reference.h).
          out.changes.push_back(std::move(change));
        }
        out.answer = [response](const std::vector<sync::LoggedEvent>& events) {
          response->set_last_offset(events.back().offset());
        };
        out.on_error = [response] { response->clear_import_id(); };
        return out;
      });
}

}  // namespace fieldsync::server
