// ShuanglianPolicy: Merge (dispatch to the per-body merges) and snapshots.
// Validation lives in validation.cc.
#include "domain/shuanglian_policy.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "domain/body_merges.h"
#include "domain/domain_keys.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {

bool ShuanglianPolicy::CreatesSubject(const v1::Event& event) const {
  return event.body_case() == v1::Event::kHouseholdRegistered;
}

absl::StatusOr<sync::MergeResult> ShuanglianPolicy::Merge(const v1::Event& event,
                                                          const sync::EventMeta& meta,
                                                          sync::ProjectionView& view) const {
  MergeContext mc(event, meta, view);
  using B = v1::Event;
  switch (event.body_case()) {
    case B::kHouseholdRegistered:
      RETURN_IF_ERROR(MergeHouseholdRegistered(mc));
      break;
    case B::kHouseholdFieldsSet:
      RETURN_IF_ERROR(MergeHouseholdFieldsSet(mc));
      break;
    case B::kMemberAdded:
      RETURN_IF_ERROR(MergeMemberAdded(mc));
      break;
    case B::kMemberUpdated:
      RETURN_IF_ERROR(MergeMemberUpdated(mc));
      break;
    case B::kMemberRemoved:
      RETURN_IF_ERROR(MergeMemberRemoved(mc));
      break;
    case B::kStatusChangeProposed:
      RETURN_IF_ERROR(MergeStatusChangeProposed(mc));
      break;
    case B::kStatusChangeConfirmed:
      RETURN_IF_ERROR(MergeStatusChangeConfirmed(mc));
      break;
    case B::kPlanRevised:
      RETURN_IF_ERROR(MergePlanRevised(mc));
      break;
    case B::kMeasureDelivered:
      RETURN_IF_ERROR(MergeMeasureDelivered(mc));
      break;
    case B::kLinkStarted:
      RETURN_IF_ERROR(MergeLinkStarted(mc));
      break;
    case B::kLinkEnded:
      RETURN_IF_ERROR(MergeLinkEnded(mc));
      break;
    case B::kConflictResolved:
      RETURN_IF_ERROR(MergeConflictResolved(mc));
      break;
    // Admin bodies reach Merge only through SyncEngine::AppendServerEvents
    // (Validate refuses them through Push): the holders links are checked against.
    case B::kUserUpserted:
      RETURN_IF_ERROR(MergeUserUpserted(mc));
      break;
    case B::kUnitUpserted:
      RETURN_IF_ERROR(MergeUnitUpserted(mc));
      break;
    // The other server-made bodies change nothing the domain holds: the
    // server's own records (areas, devices, codes) are written by the
    // engine's ServerEvent::apply in the same commit.
    case B::kAreaImported:
    case B::kDeviceEnrolled:
    case B::kDeviceRevoked:
    case B::kEnrollmentCodeIssued:
      break;
    case B::kVisitRecorded:
    case B::kVisitCorrected:
    case B::kIncomeObserved:
    case B::kFeedbackFiled:
    case B::kInspectionRecorded:
      RETURN_IF_ERROR(MergeInsertOnly(mc));
      break;
    default:
      // Validate refuses every other body before the commit.
      mc.Reject(v1::REJECTION_CODE_PERMISSION_DENIED, "body", "not a body devices push");
      break;
  }
  return mc.TakeResult();
}

absl::Status ShuanglianPolicy::AppendSnapshot(const sync::ProjectionReader& reader,
                                              const v1::SubjectRef& subject,
                                              v1::Snapshot* out) const {
  const std::string prefix = keys::SubjectState(sync::SubjectKey(subject));
  constexpr size_t kBatch = 512;
  std::string position;
  while (true) {
    ASSIGN_OR_RETURN(auto batch, reader.Scan(prefix, position, kBatch));
    for (const auto& [key, value] : batch) {
      position = key;
      const std::string_view suffix = std::string_view(key).substr(prefix.size());
      bool parsed = true;
      if (suffix == "h") {
        parsed = out->add_households()->ParseFromString(value);
      } else if (suffix.starts_with("m/")) {
        parsed = out->add_members()->ParseFromString(value);
      } else if (suffix.starts_with("p/")) {
        parsed = out->add_plans()->ParseFromString(value);
      } else if (suffix.starts_with("l/")) {
        parsed = out->add_links()->ParseFromString(value);
      } else if (suffix.starts_with("c/")) {
        ASSIGN_OR_RETURN(std::optional<std::string> conflict,
                         reader.Get(keys::Conflict(suffix.substr(2))));
        if (conflict) parsed = out->add_conflicts()->ParseFromString(*conflict);
      }
      if (!parsed) {
        return absl::DataLossError(absl::StrCat("projection ", key, " does not parse"));
      }
    }
    if (batch.size() < kBatch) return absl::OkStatus();
  }
}

}  // namespace fieldsync::domain
