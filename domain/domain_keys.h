// The domain's part of the projections key space (all under "dom/"), written
// by the MergePolicy inside the store's commit. docs/sync.md "Projection key
// layout" describes the same. "\0" is a NUL byte; be64 a big-endian u64.
//
// State of a subject (one prefix scan gives a subject's whole snapshot):
//   dom/st/<subject_key>/h                    v1.Household
//   dom/st/<subject_key>/m/<member_id>        v1.Member
//   dom/st/<subject_key>/p/<plan_id>          v1.Plan
//   dom/st/<subject_key>/l/<link_id>          v1.Link
//   dom/st/<subject_key>/c/<conflict_id>      ""  an open conflict of the subject
// Lookups and indexes:
//   dom/hh/id/<household_id>                  the household's village code
//   dom/hh/num/<household_number>             household id
//   dom/hh/area/<village>\0<household_number> household id (ListHouseholds order)
//   dom/member/<member_id>                    household id
//   dom/conflict/<conflict_id>                v1.Conflict (open and closed)
//   dom/cf/p/<prefix>\0<be64 offset>\0<id>    "o" open / "c" closed; prefix = 6, 9, 12 digits
//   dom/cf/t/<be64 offset>\0<id>              "o" / "c"; every conflict
//   dom/link/<link_id>                        the target's subject key
//   dom/link/order/<link order>               the target's subject key (ListLinks order)
//   dom/link/holder/<c|u>/<holder>\0<link order> the target's subject key (a holder's links)
//   dom/user/<user_id>                        v1.User (as last upserted)
//   dom/unit/<unit_id>                        v1.Unit (as last upserted)
// where <link order> = <area code>\0<target kind, 2 digits>\0<target id>\0
// <valid_from yyyymmdd>\0<link_id> (links.h LinkOrder): by area, then target,
// then valid_from; the link id is what follows the last NUL.
//
// Links exist only here: AdminService's link events are folded by the same
// Merge as pushed ones (the server's writer calls the policy in the commit),
// and so are UserUpserted and UnitUpserted, so that a LinkStarted is checked
// against the holder as of its place in the log. The server reads links and
// holders' link indexes through links.h; it never writes these keys.
// Merge bookkeeping (never shipped to clients):
//   dom/aux/<entity_key>/created              event_id that created the entity
//   dom/aux/<entity_key>/f/<field>            v1.ConflictSide: the write holding the field
//   dom/aux/<entity_key>/o/<field>            id of the conflict open on the field
//   dom/aux/household/<id>/status             v1.ConflictSide: the event that set the status
//   dom/aux/household/<id>/prop/<device_id>/<event_id>
//                                             v1.Event: a status proposal that became pending
//   dom/aux/household/<id>/propby/<event_id>  v1.StringList: the signing devices of those
//                                             proposals with this event_id, in log order
//   dom/aux/household/<id>/done/<device_id>/<event_id>
//                                             ""  the proposal was decided (no longer pending)
//   dom/aux/household/<id>/audit/<device_id>/<event_id>
//                                             ""  the proposal passed the township audit
//   dom/aux/plan/<plan_id>/item/<item_id>     ""  the item appeared in some revision
// where <entity_key> is the SubjectKey of a household, member or plan.
// Event ids are unique per signing device only (sync/sync_keys.h), so a
// proposal is keyed by (device_id, event_id); a decision names only the
// event_id and finds its candidates through propby/ (domain/status_merge.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fieldsync::domain::keys {

inline constexpr std::string_view kStatePrefix = "dom/st/";
inline constexpr std::string_view kHouseholdAreaPrefix = "dom/hh/area/";
inline constexpr std::string_view kConflictPrefixIndex = "dom/cf/p/";
inline constexpr std::string_view kConflictAllIndex = "dom/cf/t/";
inline constexpr std::string_view kLinkHolderPrefix = "dom/link/holder/";
inline constexpr std::string_view kLinkOrderPrefix = "dom/link/order/";

std::string SubjectState(std::string_view subject_key);  // "dom/st/<key>/"
std::string Household(std::string_view subject_key);
std::string Member(std::string_view subject_key, std::string_view member_id);
std::string Plan(std::string_view subject_key, std::string_view plan_id);
std::string Link(std::string_view subject_key, std::string_view link_id);
std::string OpenConflict(std::string_view subject_key, std::string_view conflict_id);

std::string HouseholdVillage(std::string_view household_id);
std::string HouseholdNumber(std::string_view household_number);
std::string HouseholdArea(std::string_view village, std::string_view household_number);
std::string HouseholdAreaScan(std::string_view area_prefix);
std::string MemberHousehold(std::string_view member_id);
std::string Conflict(std::string_view conflict_id);
std::string ConflictIndex(std::string_view prefix, uint64_t offset, std::string_view id);
std::string ConflictIndexScan(std::string_view prefix);
std::string ConflictAll(uint64_t offset, std::string_view id);
std::string LinkTarget(std::string_view link_id);
// `order` is a link order (links.h LinkOrder).
std::string LinkOrder(std::string_view order);
std::string LinkHolder(bool cadre, std::string_view holder_id, std::string_view order);
std::string LinkHolderScan(bool cadre, std::string_view holder_id);
// The part of a link order naming the target: <area>\0<kind, 2 digits>\0<id>\0.
std::string LinkTargetOrder(std::string_view area_code, int target_kind,
                            std::string_view target_id);
std::string User(std::string_view user_id);
std::string Unit(std::string_view unit_id);

std::string Created(std::string_view entity_key);
std::string FieldHolder(std::string_view entity_key, std::string_view field);
std::string FieldConflict(std::string_view entity_key, std::string_view field);
std::string StatusHolder(std::string_view household_id);
std::string Proposal(std::string_view household_id, std::string_view device_id,
                     std::string_view event_id);
std::string ProposalSigners(std::string_view household_id, std::string_view event_id);
std::string ProposalDecided(std::string_view household_id, std::string_view device_id,
                            std::string_view event_id);
std::string ProposalAudit(std::string_view household_id, std::string_view device_id,
                          std::string_view event_id);
std::string PlanItemSeen(std::string_view plan_id, std::string_view item_id);

}  // namespace fieldsync::domain::keys
