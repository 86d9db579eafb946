// The household status state machine (docs/domain.md "Household status").
//
//   identified → not_exited → pre_exit → exited → returned → not_exited
//   pre_exit → not_exited            (the exit check failed)
//   exited → monitored ⇄ risk_cleared (after 2021; monitoring type required)
//   any status but cancelled → cancelled
//
// A transition is one of:
//   kStep     an edge above: applied by an authorized decision;
//   kSkip     not an edge, but `to` is reachable from `from` in several
//             steps: a conflict for review (STATUS_SKIPPED_STEP);
//   kInvalid  not a transition at all (from == to, out of cancelled, back to
//             identified, unset values): the event is rejected
//             (INVALID_TRANSITION).
// Who may do what: any field role (cadre, township, county) may propose; a
// township audit needs township or county staff; a county decision, and the
// resolution of a status conflict, needs county staff. A transition by the
// wrong role becomes a conflict (STATUS_WRONG_ROLE), never a rejection.
//
// Pure functions; thread-safe.
#pragma once

#include <vector>

#include "fieldsync/v1/common.pb.h"
#include "fieldsync/v1/event.pb.h"

namespace fieldsync::domain {

enum class TransitionKind { kStep, kSkip, kInvalid };

// Classifies from → to.
TransitionKind ClassifyTransition(v1::HouseholdStatus from, v1::HouseholdStatus to);

// The single steps out of `from`.
std::vector<v1::HouseholdStatus> NextStatuses(v1::HouseholdStatus from);

// Every settable status (all but UNSPECIFIED).
const std::vector<v1::HouseholdStatus>& AllStatuses();

// May `role` propose a transition? (Others' proposals become WRONG_ROLE conflicts.)
bool MayPropose(v1::Role role);
// May `role` act at `stage`?
bool MayReview(v1::Role role, v1::ReviewStage stage);
// May `role` resolve a status conflict?
bool MayResolveStatus(v1::Role role);

}  // namespace fieldsync::domain
