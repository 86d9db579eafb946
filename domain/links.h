// Links: effective-dated assignments of a cadre or unit to a household,
// village or county. The domain's projections (domain_keys.h "dom/link...")
// are the only record of a link, whoever made it: AdminService's
// LinkStarted / LinkEnded are folded by the same Merge as pushed ones, so
// ListLinks, EndLink and every scope read the state here.
//
// Dates and link activity are in China Standard Time (UTC+8), the civil
// dates links and measures are written in. Pure functions and reads of
// committed projections; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fieldsync/v1/common.pb.h"
#include "fieldsync/v1/state.pb.h"
#include "sync/merge_policy.h"

namespace fieldsync::domain {

// The civil date of an instant in China Standard Time.
v1::Date DateOf(absl::Time time);
// yyyymmdd as a number, for comparisons.
int DateNumber(const v1::Date& date);
// A link is active while not ended, or while its valid_to is `today` or later.
bool LinkActive(const v1::Link& link, const v1::Date& today);

// Which holders and targets a link role takes (the one rule, for pushed
// events and AdminService alike): HOUSEHOLD_HELPER a cadre to a household;
// VILLAGE_CADRE a cadre, VILLAGE_UNIT a unit, to a village (SUBJECT_KIND_VILLAGE);
// COUNTY_LEADER and LEAD_LEADER a cadre, GROUP_LEADER_UNIT a unit, to a
// county (SUBJECT_KIND_AREA).
struct LinkRoleFit {
  bool known_role = false;
  bool holder_fits = false;
  bool target_fits = false;
  bool ok() const { return known_role && holder_fits && target_fits; }
};
LinkRoleFit FitLinkRole(v1::LinkRole role, bool cadre_holder, v1::SubjectKind target_kind);

// Whether a holder may hold a new link (the one rule, for pushed LinkStarted
// and AdminService's StartLink / EndLink replacements alike): a cadre holder
// must be an existing user of role CADRE, not disabled; a unit holder an
// existing unit, not disabled. `user` / `unit` are the holder's records as
// the caller read them (nullopt: none).
enum class HolderProblem { kNone, kUnknown, kNotCadre, kDisabled };
struct HolderCheck {
  HolderProblem problem = HolderProblem::kNone;
  std::string message;  // Says why, naming the holder; empty for kNone.
  bool ok() const { return problem == HolderProblem::kNone; }
};
HolderCheck CheckLinkHolder(bool cadre_holder, std::string_view holder_id,
                            const std::optional<v1::User>& user,
                            const std::optional<v1::Unit>& unit);

// The position of a link in the link order (domain_keys.h): area, target
// kind, target id, valid_from, link id.
std::string LinkOrder(const v1::Link& link);

// The link `link_id`; nullopt if none. DataLoss for a corrupt record.
absl::StatusOr<std::optional<v1::Link>> FindLink(const sync::ProjectionReader& reader,
                                                 std::string_view link_id);

// The link behind an entry of a link order index (keys::LinkOrder or
// keys::LinkHolder: key and value as scanned). DataLoss if it is missing.
absl::StatusOr<v1::Link> LinkOfIndexEntry(const sync::ProjectionReader& reader,
                                          std::string_view key, std::string_view target_key);

// The links held by a cadre (or a unit), in link order; active ones on
// `today` only if `active_only`.
absl::StatusOr<std::vector<v1::Link>> LinksOfHolder(const sync::ProjectionReader& reader,
                                                    bool cadre, std::string_view holder_id,
                                                    bool active_only, const v1::Date& today);

}  // namespace fieldsync::domain
