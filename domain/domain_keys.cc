#include "domain/domain_keys.h"

#include "base/big_endian.h"

namespace fieldsync::domain::keys {
namespace {

std::string Cat(std::initializer_list<std::string_view> parts) {
  size_t size = 0;
  for (std::string_view p : parts) size += p.size();
  std::string out;
  out.reserve(size);
  for (std::string_view p : parts) out.append(p);
  return out;
}

constexpr std::string_view kNul("\0", 1);

}  // namespace

std::string SubjectState(std::string_view subject_key) {
  return Cat({kStatePrefix, subject_key, "/"});
}
std::string Household(std::string_view subject_key) {
  return Cat({kStatePrefix, subject_key, "/h"});
}
std::string Member(std::string_view subject_key, std::string_view member_id) {
  return Cat({kStatePrefix, subject_key, "/m/", member_id});
}
std::string Plan(std::string_view subject_key, std::string_view plan_id) {
  return Cat({kStatePrefix, subject_key, "/p/", plan_id});
}
std::string Link(std::string_view subject_key, std::string_view link_id) {
  return Cat({kStatePrefix, subject_key, "/l/", link_id});
}
std::string OpenConflict(std::string_view subject_key, std::string_view conflict_id) {
  return Cat({kStatePrefix, subject_key, "/c/", conflict_id});
}

std::string HouseholdVillage(std::string_view household_id) {
  return Cat({"dom/hh/id/", household_id});
}
std::string HouseholdNumber(std::string_view household_number) {
  return Cat({"dom/hh/num/", household_number});
}
std::string HouseholdArea(std::string_view village, std::string_view household_number) {
  return Cat({kHouseholdAreaPrefix, village, kNul, household_number});
}
std::string HouseholdAreaScan(std::string_view area_prefix) {
  return Cat({kHouseholdAreaPrefix, area_prefix});
}
std::string MemberHousehold(std::string_view member_id) { return Cat({"dom/member/", member_id}); }
std::string Conflict(std::string_view conflict_id) { return Cat({"dom/conflict/", conflict_id}); }
std::string ConflictIndex(std::string_view prefix, uint64_t offset, std::string_view id) {
  return Cat({kConflictPrefixIndex, prefix, kNul, base::Be64(offset), kNul, id});
}
std::string ConflictIndexScan(std::string_view prefix) {
  return Cat({kConflictPrefixIndex, prefix, kNul});
}
std::string ConflictAll(uint64_t offset, std::string_view id) {
  return Cat({kConflictAllIndex, base::Be64(offset), kNul, id});
}
std::string LinkTarget(std::string_view link_id) { return Cat({"dom/link/", link_id}); }
std::string LinkOrder(std::string_view order) { return Cat({kLinkOrderPrefix, order}); }
std::string LinkHolder(bool cadre, std::string_view holder_id, std::string_view order) {
  return Cat({kLinkHolderPrefix, cadre ? "c/" : "u/", holder_id, kNul, order});
}
std::string LinkHolderScan(bool cadre, std::string_view holder_id) {
  return Cat({kLinkHolderPrefix, cadre ? "c/" : "u/", holder_id, kNul});
}

std::string LinkTargetOrder(std::string_view area_code, int target_kind,
                            std::string_view target_id) {
  const char kind[3] = {static_cast<char>('0' + (target_kind / 10) % 10),
                        static_cast<char>('0' + target_kind % 10), '\0'};
  return Cat({area_code, kNul, std::string_view(kind, 2), kNul, target_id, kNul});
}
std::string User(std::string_view user_id) { return Cat({"dom/user/", user_id}); }
std::string Unit(std::string_view unit_id) { return Cat({"dom/unit/", unit_id}); }

std::string Created(std::string_view entity_key) {
  return Cat({"dom/aux/", entity_key, "/created"});
}
std::string FieldHolder(std::string_view entity_key, std::string_view field) {
  return Cat({"dom/aux/", entity_key, "/f/", field});
}
std::string FieldConflict(std::string_view entity_key, std::string_view field) {
  return Cat({"dom/aux/", entity_key, "/o/", field});
}
std::string StatusHolder(std::string_view household_id) {
  return Cat({"dom/aux/household/", household_id, "/status"});
}
std::string Proposal(std::string_view household_id, std::string_view device_id,
                     std::string_view event_id) {
  return Cat({"dom/aux/household/", household_id, "/prop/", device_id, "/", event_id});
}
std::string ProposalSigners(std::string_view household_id, std::string_view event_id) {
  return Cat({"dom/aux/household/", household_id, "/propby/", event_id});
}
std::string ProposalDecided(std::string_view household_id, std::string_view device_id,
                            std::string_view event_id) {
  return Cat({"dom/aux/household/", household_id, "/done/", device_id, "/", event_id});
}
std::string ProposalAudit(std::string_view household_id, std::string_view device_id,
                          std::string_view event_id) {
  return Cat({"dom/aux/household/", household_id, "/audit/", device_id, "/", event_id});
}
std::string PlanItemSeen(std::string_view plan_id, std::string_view item_id) {
  return Cat({"dom/aux/plan/", plan_id, "/item/", item_id});
}

}  // namespace fieldsync::domain::keys
