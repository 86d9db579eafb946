// The per-body merges of ShuanglianPolicy (internal). Each folds the event of
// `mc` into state, or calls mc.Reject for a state-dependent refusal. Errors
// are storage or corruption errors only.
#pragma once

#include "absl/status/status.h"
#include "domain/merge_context.h"

namespace fieldsync::domain {

absl::Status MergeHouseholdRegistered(MergeContext& mc);
absl::Status MergeHouseholdFieldsSet(MergeContext& mc);
absl::Status MergeMemberAdded(MergeContext& mc);
absl::Status MergeMemberUpdated(MergeContext& mc);
absl::Status MergeMemberRemoved(MergeContext& mc);
// Visits, corrections, incomes, feedback, inspections: subject checks only.
absl::Status MergeInsertOnly(MergeContext& mc);
absl::Status MergeMeasureDelivered(MergeContext& mc);
absl::Status MergeStatusChangeProposed(MergeContext& mc);
absl::Status MergeStatusChangeConfirmed(MergeContext& mc);
absl::Status MergePlanRevised(MergeContext& mc);
absl::Status MergeLinkStarted(MergeContext& mc);
absl::Status MergeLinkEnded(MergeContext& mc);
// Server-made (never pushed): the one record of areas, units and users
// (reference.h), which a LinkStarted's holder is checked against.
absl::Status MergeAreaImported(MergeContext& mc);
absl::Status MergeUserUpserted(MergeContext& mc);
absl::Status MergeUnitUpserted(MergeContext& mc);
absl::Status MergeConflictResolved(MergeContext& mc);

// The household of the event's subject, checked: nullopt (and mc rejected
// UNKNOWN_SUBJECT or SUBJECT_MISMATCH) if it does not exist or the event's
// area_code is not its village.
absl::StatusOr<std::optional<v1::Household>> LoadSubjectHousehold(MergeContext& mc);

// Sets the household's status by this event (status_version + 1, the
// standing side, a WriteOutcome).
absl::Status ApplyStatus(MergeContext& mc, v1::Household& h, v1::HouseholdStatus to,
                         v1::MonitoringType type);

// Writes a household field (or its mirrors) after a winning write.
void SetHouseholdField(v1::Household& household, const std::string& field,
                       const v1::VersionedValue& value);
void SetMemberField(v1::Member& member, const std::string& field, const v1::VersionedValue& value);

}  // namespace fieldsync::domain
