#include "domain/queries.h"

#include <algorithm>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/area_code.h"
#include "base/proto_parse.h"
#include "base/status_macros.h"
#include "base/text.h"
#include "domain/domain_keys.h"
#include "domain/links.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {
namespace {

constexpr size_t kScanBatch = 256;
constexpr size_t kDefaultPageSize = 100;

template <typename M>
absl::StatusOr<std::optional<M>> LoadMessage(const sync::ProjectionReader& reader,
                                             std::string_view key) {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes, reader.Get(key));
  return base::ParseStoredOptional<M>(key, bytes);
}

absl::StatusOr<std::string> DecodeToken(const std::string& token) {
  std::string out;
  if (!token.empty() && !absl::WebSafeBase64Unescape(token, &out)) {
    return absl::InvalidArgumentError("page_token is malformed");
  }
  return out;
}

}  // namespace

DomainQueries::DomainQueries(const sync::ProjectionReader* reader, size_t max_page_size,
                             std::function<absl::Time()> clock)
    : reader_(reader), max_page_size_(max_page_size), clock_(std::move(clock)) {}

size_t DomainQueries::PageSize(uint32_t requested) const {
  return requested == 0 ? std::min(kDefaultPageSize, max_page_size_)
                        : std::min<size_t>(requested, max_page_size_);
}

absl::StatusOr<std::optional<v1::Household>> DomainQueries::FindHousehold(
    std::string_view id) const {
  return LoadMessage<v1::Household>(*reader_,
                                    keys::Household(absl::StrCat("household/", std::string(id))));
}

absl::StatusOr<std::optional<v1::Household>> DomainQueries::FindHouseholdByNumber(
    std::string_view household_number) const {
  ASSIGN_OR_RETURN(std::optional<std::string> id,
                   reader_->Get(keys::HouseholdNumber(household_number)));
  if (!id) return std::optional<v1::Household>();
  return FindHousehold(*id);
}

absl::StatusOr<v1::GetHouseholdResponse> DomainQueries::GetHousehold(
    const sync::Scope& scope, const v1::GetHouseholdRequest& request) const {
  std::optional<v1::Household> household;
  switch (request.key_case()) {
    case v1::GetHouseholdRequest::kId: {
      ASSIGN_OR_RETURN(household, FindHousehold(request.id()));
      break;
    }
    case v1::GetHouseholdRequest::kHouseholdNumber: {
      ASSIGN_OR_RETURN(household, FindHouseholdByNumber(request.household_number()));
      break;
    }
    default:
      return absl::InvalidArgumentError("id or household_number is required");
  }
  const std::string key = household ? absl::StrCat("household/", household->id()) : "";
  if (!household || !sync::Contains(sync::Normalize(scope), household->village_code(), key)) {
    if (!household) return absl::NotFoundError("no such household");
    return absl::PermissionDeniedError("the household is outside the caller's scope");
  }
  v1::GetHouseholdResponse response;
  const std::string prefix = keys::SubjectState(key);
  const v1::Date today = DateOf(clock_());
  std::string position;
  while (true) {
    ASSIGN_OR_RETURN(auto batch, reader_->Scan(prefix, position, kScanBatch));
    for (const auto& [k, value] : batch) {
      position = k;
      const std::string_view suffix = std::string_view(k).substr(prefix.size());
      bool ok = true;
      if (suffix == "h") {
        ok = response.mutable_household()->ParseFromString(value);
      } else if (suffix.starts_with("m/")) {
        v1::Member member;
        ok = member.ParseFromString(value);
        if (ok && !member.removed()) *response.add_members() = std::move(member);
      } else if (suffix.starts_with("p/")) {
        ok = response.add_plans()->ParseFromString(value);
      } else if (suffix.starts_with("l/")) {
        v1::Link link;
        ok = link.ParseFromString(value);
        if (ok && LinkActive(link, today)) *response.add_links() = std::move(link);
      } else if (suffix.starts_with("c/")) {
        ASSIGN_OR_RETURN(std::optional<v1::Conflict> conflict,
                         LoadMessage<v1::Conflict>(*reader_, keys::Conflict(suffix.substr(2))));
        if (conflict && conflict->open()) *response.add_conflicts() = *std::move(conflict);
      }
      if (!ok) return absl::DataLossError(absl::StrCat("projection ", k, " does not parse"));
    }
    if (batch.size() < kScanBatch) break;
  }
  return response;
}

absl::StatusOr<v1::ListHouseholdsResponse> DomainQueries::ListHouseholds(
    const sync::Scope& scope_in, const v1::ListHouseholdsRequest& request) const {
  const sync::Scope scope = sync::Normalize(scope_in);
  const std::string& prefix = request.scope_prefix();
  if (prefix.empty() || prefix.size() > base::kAreaCodeDigits || !base::IsDigits(prefix)) {
    return absl::InvalidArgumentError("scope_prefix must be 1..12 digits");
  }
  const size_t page_size = PageSize(request.page_size());
  ASSIGN_OR_RETURN(const std::string after, DecodeToken(request.page_token()));
  auto wanted = [&request](const v1::Household& h) {
    if (request.statuses().empty()) return true;
    return std::find(request.statuses().begin(), request.statuses().end(), h.status()) !=
           request.statuses().end();
  };
  v1::ListHouseholdsResponse response;

  if (sync::CoversPrefix(scope, prefix)) {
    const std::string index = keys::HouseholdAreaScan(prefix);
    const std::string base(keys::kHouseholdAreaPrefix);
    std::string position = after.empty() ? "" : base + after;
    while (true) {
      ASSIGN_OR_RETURN(auto batch, reader_->Scan(index, position, kScanBatch));
      for (const auto& [key, id] : batch) {
        if (static_cast<size_t>(response.households_size()) == page_size) {
          response.set_next_page_token(absl::WebSafeBase64Escape(position.substr(base.size())));
          return response;
        }
        position = key;
        ASSIGN_OR_RETURN(std::optional<v1::Household> h, FindHousehold(id));
        if (h && wanted(*h)) *response.add_households() = *std::move(h);
      }
      if (batch.size() < kScanBatch) return response;
    }
  }

  // Not covered: the scope's named households under the prefix.
  std::map<std::string, v1::Household> named;  // Ordered by village\0number.
  for (const std::string& key : scope.subject_keys) {
    if (!key.starts_with("household/")) continue;
    ASSIGN_OR_RETURN(std::optional<v1::Household> h,
                     FindHousehold(std::string_view(key).substr(10)));
    if (!h || !h->village_code().starts_with(prefix) || !wanted(*h)) continue;
    std::string order = h->village_code();
    order.push_back('\0');
    order.append(h->household_number());
    named.emplace(std::move(order), *std::move(h));
  }
  if (named.empty() &&
      !std::any_of(scope.subject_keys.begin(), scope.subject_keys.end(),
                   [](const std::string& k) { return k.starts_with("household/"); })) {
    return absl::PermissionDeniedError(
        absl::StrCat("area prefix ", prefix, " is outside the caller's scope"));
  }
  for (auto it = named.upper_bound(after); it != named.end(); ++it) {
    if (static_cast<size_t>(response.households_size()) == page_size) {
      response.set_next_page_token(absl::WebSafeBase64Escape(std::prev(it)->first));
      return response;
    }
    *response.add_households() = it->second;
  }
  return response;
}

absl::StatusOr<v1::ListConflictsResponse> DomainQueries::ListConflicts(
    const sync::Scope& scope_in, const v1::ListConflictsRequest& request) const {
  const sync::Scope scope = sync::Normalize(scope_in);
  const std::string& prefix = request.scope_prefix();
  if (prefix.empty() || prefix.size() > base::kAreaCodeDigits || !base::IsDigits(prefix)) {
    return absl::InvalidArgumentError("scope_prefix must be 1..12 digits");
  }
  if (!sync::CoversPrefix(scope, prefix)) {
    return absl::PermissionDeniedError(
        absl::StrCat("area prefix ", prefix, " is outside the caller's scope"));
  }
  const bool indexed = prefix.size() == 6 || prefix.size() == 9 || prefix.size() == 12;
  const std::string index =
      indexed ? keys::ConflictIndexScan(prefix) : std::string(keys::kConflictAllIndex);
  const size_t page_size = PageSize(request.page_size());
  ASSIGN_OR_RETURN(const std::string after, DecodeToken(request.page_token()));
  std::string position = after.empty() ? "" : index + after;
  v1::ListConflictsResponse response;
  while (true) {
    ASSIGN_OR_RETURN(auto batch, reader_->Scan(index, position, kScanBatch));
    for (const auto& [key, flag] : batch) {
      if (static_cast<size_t>(response.conflicts_size()) == page_size) {
        response.set_next_page_token(absl::WebSafeBase64Escape(position.substr(index.size())));
        return response;
      }
      position = key;
      if (request.open_only() && flag != "o") continue;
      const size_t nul = key.rfind('\0');
      if (nul == std::string::npos) continue;
      ASSIGN_OR_RETURN(std::optional<v1::Conflict> conflict,
                       LoadMessage<v1::Conflict>(*reader_, keys::Conflict(key.substr(nul + 1))));
      if (!conflict) continue;
      if (!indexed && !conflict->area_code().starts_with(prefix)) continue;
      *response.add_conflicts() = *std::move(conflict);
    }
    if (batch.size() < kScanBatch) return response;
  }
}

absl::StatusOr<std::vector<v1::Link>> DomainQueries::LinksOfHolder(bool cadre,
                                                                   std::string_view holder_id,
                                                                   bool active_only) const {
  return domain::LinksOfHolder(*reader_, cadre, holder_id, active_only, DateOf(clock_()));
}

}  // namespace fieldsync::domain
