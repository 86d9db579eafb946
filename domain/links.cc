#include "domain/links.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "base/proto_parse.h"
#include "base/status_macros.h"
#include "domain/domain_keys.h"

namespace fieldsync::domain {
namespace {

constexpr size_t kScanBatch = 256;

absl::StatusOr<std::optional<v1::Link>> LoadLink(const sync::ProjectionReader& reader,
                                                 std::string_view target_key,
                                                 std::string_view link_id) {
  const std::string key = keys::Link(target_key, link_id);
  ASSIGN_OR_RETURN(std::optional<std::string> bytes, reader.Get(key));
  return base::ParseStoredOptional<v1::Link>(key, bytes);
}

}  // namespace

v1::Date DateOf(absl::Time time) {
  static const absl::TimeZone* cst = new absl::TimeZone(absl::FixedTimeZone(8 * 60 * 60));
  const absl::CivilDay day = absl::ToCivilDay(time, *cst);
  v1::Date date;
  date.set_year(static_cast<int32_t>(day.year()));
  date.set_month(day.month());
  date.set_day(day.day());
  return date;
}

int DateNumber(const v1::Date& date) {
  return date.year() * 10000 + date.month() * 100 + date.day();
}

bool LinkActive(const v1::Link& link, const v1::Date& today) {
  if (link.ended_offset() == 0 && !link.has_valid_to()) return true;
  return DateNumber(link.valid_to()) >= DateNumber(today);
}

LinkRoleFit FitLinkRole(v1::LinkRole role, bool cadre_holder, v1::SubjectKind target_kind) {
  LinkRoleFit fit;
  fit.known_role = true;
  switch (role) {
    case v1::LINK_ROLE_HOUSEHOLD_HELPER:
      fit.holder_fits = cadre_holder;
      fit.target_fits = target_kind == v1::SUBJECT_KIND_HOUSEHOLD;
      break;
    case v1::LINK_ROLE_VILLAGE_UNIT:
      fit.holder_fits = !cadre_holder;
      fit.target_fits = target_kind == v1::SUBJECT_KIND_VILLAGE;
      break;
    case v1::LINK_ROLE_VILLAGE_CADRE:
      fit.holder_fits = cadre_holder;
      fit.target_fits = target_kind == v1::SUBJECT_KIND_VILLAGE;
      break;
    case v1::LINK_ROLE_COUNTY_LEADER:
    case v1::LINK_ROLE_LEAD_LEADER:
      fit.holder_fits = cadre_holder;
      fit.target_fits = target_kind == v1::SUBJECT_KIND_AREA;
      break;
    case v1::LINK_ROLE_GROUP_LEADER_UNIT:
      fit.holder_fits = !cadre_holder;
      fit.target_fits = target_kind == v1::SUBJECT_KIND_AREA;
      break;
    default:
      fit.known_role = false;
      break;
  }
  return fit;
}

std::string LinkOrder(const v1::Link& link) {
  // valid_from as 8 digits, so that the key order is the date order.
  std::string from = std::to_string(std::max(DateNumber(link.valid_from()), 0));
  if (from.size() < 8) from.insert(0, 8 - from.size(), '0');
  return absl::StrCat(
      keys::LinkTargetOrder(link.area_code(), link.target().kind(), link.target().id()), from,
      std::string(1, '\0'), link.id());
}

absl::StatusOr<std::optional<v1::Link>> FindLink(const sync::ProjectionReader& reader,
                                                 std::string_view link_id) {
  ASSIGN_OR_RETURN(std::optional<std::string> target, reader.Get(keys::LinkTarget(link_id)));
  if (!target) return std::optional<v1::Link>();
  ASSIGN_OR_RETURN(std::optional<v1::Link> link, LoadLink(reader, *target, link_id));
  if (!link) {
    return absl::DataLossError(
        absl::StrCat("link ", std::string(link_id), " is indexed but has no record"));
  }
  return link;
}

absl::StatusOr<v1::Link> LinkOfIndexEntry(const sync::ProjectionReader& reader,
                                          std::string_view key, std::string_view target_key) {
  const size_t nul = key.rfind('\0');
  const std::string_view link_id = nul == std::string_view::npos ? key : key.substr(nul + 1);
  ASSIGN_OR_RETURN(std::optional<v1::Link> link, LoadLink(reader, target_key, link_id));
  if (!link) {
    return absl::DataLossError(
        absl::StrCat("link index names missing link ", std::string(link_id)));
  }
  return *std::move(link);
}

absl::StatusOr<std::vector<v1::Link>> LinksOfHolder(const sync::ProjectionReader& reader,
                                                    bool cadre, std::string_view holder_id,
                                                    bool active_only, const v1::Date& today) {
  std::vector<v1::Link> links;
  const std::string index = keys::LinkHolderScan(cadre, holder_id);
  std::string position;
  while (true) {
    ASSIGN_OR_RETURN(auto batch, reader.Scan(index, position, kScanBatch));
    for (const auto& [key, target] : batch) {
      position = key;
      ASSIGN_OR_RETURN(v1::Link link, LinkOfIndexEntry(reader, key, target));
      if (active_only && !LinkActive(link, today)) continue;
      links.push_back(std::move(link));
    }
    if (batch.size() < kScanBatch) return links;
  }
}

}  // namespace fieldsync::domain
