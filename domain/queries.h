// DomainQueries: the QueryService's reads of domain state (households,
// conflicts, links), over the committed projections. History and rejections
// are the sync engine's (SyncEngine::GetHistory, ListRejections).
//
// Every call is limited to the caller's scope: PERMISSION_DENIED outside it.
// Pages: page_size 0 = 100, capped by max_page_size; page tokens are opaque
// (web-safe base64 of an index position); an empty next_page_token is the
// last page. A page also ends after `max_examined` index entries were looked
// at (returned or filtered out): such a page may hold fewer entries than asked,
// even none, and still carries a next_page_token to continue from.
//
// Thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fieldsync/v1/query_service.pb.h"
#include "fieldsync/v1/state.pb.h"
#include "sync/merge_policy.h"
#include "sync/scope.h"

namespace fieldsync::domain {

class DomainQueries {
 public:
  // `reader` must outlive the queries (SyncEngine::reader()). `clock` tells
  // which links are active today. `max_examined` (at least 1) bounds the
  // index entries one ListHouseholds or ListConflicts page looks at
  // (fieldsyncd: limits.max_examined_records).
  explicit DomainQueries(
      const sync::ProjectionReader* reader, size_t max_page_size = 1000,
      std::function<absl::Time()> clock = [] { return absl::Now(); }, size_t max_examined = 10000);

  // A household with its current members, active links, plans and open
  // conflicts. NOT_FOUND if unknown; INVALID_ARGUMENT without a key.
  absl::StatusOr<v1::GetHouseholdResponse> GetHousehold(
      const sync::Scope& scope, const v1::GetHouseholdRequest& request) const;

  // Households under an area prefix, by village then household number. A
  // prefix outside the scope lists only the scope's named households under
  // it (PERMISSION_DENIED if there are none to consider).
  absl::StatusOr<v1::ListHouseholdsResponse> ListHouseholds(
      const sync::Scope& scope, const v1::ListHouseholdsRequest& request) const;

  // Conflicts under an area prefix, oldest first (by the offset that opened
  // them) for 6-, 9- and 12-digit prefixes, optionally open ones only.
  absl::StatusOr<v1::ListConflictsResponse> ListConflicts(
      const sync::Scope& scope, const v1::ListConflictsRequest& request) const;

  // The links a cadre (or a unit) holds (the scope rule reads them through
  // domain/scope.h UserScopes).
  absl::StatusOr<std::vector<v1::Link>> LinksOfHolder(bool cadre, std::string_view holder_id,
                                                      bool active_only) const;

  // Households by id or registry number; nullopt if unknown (no scope check:
  // for the server's own use, e.g. placing a household for a link).
  absl::StatusOr<std::optional<v1::Household>> FindHousehold(std::string_view id) const;
  absl::StatusOr<std::optional<v1::Household>> FindHouseholdByNumber(
      std::string_view household_number) const;

 private:
  size_t PageSize(uint32_t requested) const;

  const sync::ProjectionReader* reader_;
  const size_t max_page_size_;
  const size_t max_examined_;
  const std::function<absl::Time()> clock_;
};

}  // namespace fieldsync::domain
