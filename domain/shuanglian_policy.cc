// ShuanglianPolicy: Merge (dispatch to the per-body merges) and snapshots.
// Validation lives in validation.cc.
#include "domain/shuanglian_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/area_code.h"
#include "base/status_macros.h"
#include "domain/assessment/aggregates.h"
#include "domain/body_merges.h"
#include "domain/domain_keys.h"
#include "domain/reference.h"
#include "sync/event_codec.h"

namespace fieldsync::domain {

bool ShuanglianPolicy::CreatesSubject(const v1::Event& event) const {
  return event.body_case() == v1::Event::kHouseholdRegistered;
}

std::optional<v1::SubjectRef> ShuanglianPolicy::HomeOfCreatedSubject(
    const v1::Event& event) const {
  if (event.body_case() != v1::Event::kHouseholdRegistered) return std::nullopt;
  v1::SubjectRef village;
  village.set_kind(v1::SUBJECT_KIND_VILLAGE);
  village.set_id(event.area_code());
  return village;
}

bool ShuanglianPolicy::IsEventSubjectKind(v1::SubjectKind kind) const {
  switch (kind) {
    case v1::SUBJECT_KIND_HOUSEHOLD:
    case v1::SUBJECT_KIND_VILLAGE:
    case v1::SUBJECT_KIND_UNIT:
    case v1::SUBJECT_KIND_CADRE:
    case v1::SUBJECT_KIND_AREA:
    case v1::SUBJECT_KIND_USER:
    case v1::SUBJECT_KIND_DEVICE:
      return true;
    default:
      return false;
  }
}

std::optional<std::string> ShuanglianPolicy::CheckAreaCode(std::string_view area_code) const {
  if (base::IsAreaCode(area_code)) return std::nullopt;
  return "area_code must be a 12-digit admin-area code";
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
    case B::kAreaImported:
      RETURN_IF_ERROR(MergeAreaImported(mc));
      break;
    // The other server-made bodies change nothing the domain holds: the
    // server's own records (devices, codes) are written by the engine's
    // ServerEvent::apply in the same commit.
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
  // The assessment aggregates, in the same batch as the event's own writes.
  if (!mc.rejected()) {
    RETURN_IF_ERROR(assessment::ApplyAtCommit(event, meta, view, options_.assessment));
  }
  return mc.TakeResult();
}

absl::Status ShuanglianPolicy::AppendSnapshot(const sync::ProjectionReader& reader,
                                              const v1::SubjectRef& subject,
                                              v1::Snapshot* out) const {
  const std::string prefix = keys::SubjectState(sync::SubjectKey(subject));
  constexpr size_t kBatch = 512;
  std::string position;
  // Where the subject lives, for Snapshot.areas: a household's village (read
  // from its state below), a village's or county's own code.
  std::string area_code;
  if (subject.kind() == v1::SUBJECT_KIND_VILLAGE || subject.kind() == v1::SUBJECT_KIND_AREA) {
    area_code = subject.id();
  }
  const int households_before = out->households_size();
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
    if (batch.size() < kBatch) break;
  }
  if (out->households_size() > households_before) {
    area_code = out->households(households_before).village_code();
  }
  if (area_code.empty()) return absl::OkStatus();
  return AppendAreaChain(reader, area_code, out->mutable_areas());
}

absl::Status ShuanglianPolicy::AppendConflictsOf(
    const sync::ProjectionReader& reader, const v1::StoredEvent& stored,
    google::protobuf::RepeatedPtrField<v1::Conflict>* out) const {
  std::vector<std::string> ids;
  for (const v1::WriteOutcome& write : stored.writes()) {
    if (!write.conflict_id().empty()) ids.push_back(write.conflict_id());
  }
  if (stored.event().body_case() == v1::Event::kConflictResolved) {
    ids.push_back(stored.event().conflict_resolved().conflict_id());
  }
  for (const std::string& id : ids) {
    if (std::any_of(out->begin(), out->end(),
                    [&](const v1::Conflict& c) { return c.id() == id; })) {
      continue;
    }
    const std::string key = keys::Conflict(id);
    ASSIGN_OR_RETURN(std::optional<std::string> bytes, reader.Get(key));
    // An accepted event names only conflicts its merge saved.
    if (!bytes) return absl::DataLossError(absl::StrCat("conflict ", id, " is missing"));
    if (!out->Add()->ParseFromString(*bytes)) {
      return absl::DataLossError(absl::StrCat("projection ", key, " does not parse"));
    }
  }
  return absl::OkStatus();
}

}  // namespace fieldsync::domain
