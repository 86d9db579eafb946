#include "domain/status_machine.h"

#include <deque>
#include <set>

namespace fieldsync::domain {
namespace {

using S = v1::HouseholdStatus;

}  // namespace

const std::vector<v1::HouseholdStatus>& AllStatuses() {
  static const auto* all = new std::vector<S>{
      v1::HOUSEHOLD_STATUS_IDENTIFIED, v1::HOUSEHOLD_STATUS_NOT_EXITED,
      v1::HOUSEHOLD_STATUS_PRE_EXIT,   v1::HOUSEHOLD_STATUS_EXITED,
      v1::HOUSEHOLD_STATUS_RETURNED,   v1::HOUSEHOLD_STATUS_CANCELLED,
      v1::HOUSEHOLD_STATUS_MONITORED,  v1::HOUSEHOLD_STATUS_RISK_CLEARED,
  };
  return *all;
}

std::vector<v1::HouseholdStatus> NextStatuses(v1::HouseholdStatus from) {
  std::vector<S> next;
  switch (from) {
    case v1::HOUSEHOLD_STATUS_IDENTIFIED:
      next = {v1::HOUSEHOLD_STATUS_NOT_EXITED};
      break;
    case v1::HOUSEHOLD_STATUS_NOT_EXITED:
      next = {v1::HOUSEHOLD_STATUS_PRE_EXIT};
      break;
    case v1::HOUSEHOLD_STATUS_PRE_EXIT:
      next = {v1::HOUSEHOLD_STATUS_EXITED, v1::HOUSEHOLD_STATUS_NOT_EXITED};
      break;
    case v1::HOUSEHOLD_STATUS_EXITED:
      next = {v1::HOUSEHOLD_STATUS_RETURNED, v1::HOUSEHOLD_STATUS_MONITORED};
      break;
    case v1::HOUSEHOLD_STATUS_RETURNED:
      next = {v1::HOUSEHOLD_STATUS_NOT_EXITED};
      break;
    case v1::HOUSEHOLD_STATUS_MONITORED:
      next = {v1::HOUSEHOLD_STATUS_RISK_CLEARED};
      break;
    case v1::HOUSEHOLD_STATUS_RISK_CLEARED:
      next = {v1::HOUSEHOLD_STATUS_MONITORED};
      break;
    default:
      return next;  // cancelled and unset: no way out.
  }
  next.push_back(v1::HOUSEHOLD_STATUS_CANCELLED);
  return next;
}

TransitionKind ClassifyTransition(v1::HouseholdStatus from, v1::HouseholdStatus to) {
  if (from == v1::HOUSEHOLD_STATUS_UNSPECIFIED || to == v1::HOUSEHOLD_STATUS_UNSPECIFIED ||
      !v1::HouseholdStatus_IsValid(from) || !v1::HouseholdStatus_IsValid(to) || from == to) {
    return TransitionKind::kInvalid;
  }
  const std::vector<S> next = NextStatuses(from);
  for (S s : next) {
    if (s == to) return TransitionKind::kStep;
  }
  // Reachable in several steps? (Breadth-first over the small graph.)
  std::set<S> seen{from};
  std::deque<S> queue(next.begin(), next.end());
  while (!queue.empty()) {
    const S s = queue.front();
    queue.pop_front();
    if (s == to) return TransitionKind::kSkip;
    if (!seen.insert(s).second) continue;
    for (S n : NextStatuses(s)) queue.push_back(n);
  }
  return TransitionKind::kInvalid;
}

bool MayPropose(v1::Role role) {
  return role == v1::ROLE_CADRE || role == v1::ROLE_TOWNSHIP_STAFF || role == v1::ROLE_COUNTY_STAFF;
}

bool MayReview(v1::Role role, v1::ReviewStage stage) {
  switch (stage) {
    case v1::REVIEW_STAGE_TOWNSHIP_AUDIT:
      return role == v1::ROLE_TOWNSHIP_STAFF || role == v1::ROLE_COUNTY_STAFF;
    case v1::REVIEW_STAGE_COUNTY_DECISION:
      return role == v1::ROLE_COUNTY_STAFF;
    default:
      return false;
  }
}

bool MayResolveStatus(v1::Role role) { return role == v1::ROLE_COUNTY_STAFF; }

}  // namespace fieldsync::domain
