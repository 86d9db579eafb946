// ShuanglianPolicy: the 雙聯 domain's MergePolicy (sync/merge_policy.h).
//
// It validates every domain body, folds events into households, members,
// plans and links, runs the household status state machine and keeps
// conflict records. The rules, per body:
//   - visits, visit corrections, measures, incomes, feedback, inspections:
//     insert-only (a correction points at its original and keeps it);
//   - household and member fields, and plan item lists: versioned; a write
//     carries the version its device saw (base). Sequential writes apply; a
//     concurrent one (stale base, another device) is decided by the higher
//     (adopted HLC, device id), and both sides go to a conflict record. A
//     field has at most one open conflict: every later write to it joins that
//     record with its device's latest write, so the conflict set is the same
//     whatever order the writes arrive in (docs/sync.md "Merge");
//   - status: proposals and decisions (status_machine.h); a stale `from`, a
//     skipped step or the wrong role become a conflict for review, never a
//     silent overwrite or drop;
//   - links: start and end, effective-dated; a replacement names the link it
//     replaces;
//   - conflict resolutions: the first one closes the conflict and sets the
//     value; later ones are rejected ALREADY_DECIDED.
// Admin bodies are server-made and never accepted through Push.
//
// Thread-safe: immutable after construction.
#pragma once

#include "absl/time/time.h"
#include "domain/assessment/rules.h"
#include "sync/merge_policy.h"

namespace fieldsync::domain {

// Settings of the domain rules; every one documents its default.
// The server fills the bounds from ServerConfig.validation (config.proto
// ValidationConfig); a value outside them is INVALID_VALUE, the rejection's
// field its path and its message the bound.
struct DomainOptions {
  // Longest visit (end - start); longer ones are INVALID_VALUE. Default 72 hours.
  absl::Duration max_visit_duration = absl::Hours(72);
  // Largest money amount of one value, fen: MeasureDelivered.amount_fen,
  // IncomeObserved.amount_fen, PlanItem.cost_fen. Default 100,000,000 (one
  // million yuan): far above any one household's support measure or income
  // entry, far below anything that could wrap a sum. A plan item's delivered
  // total is checked at merge: a delivery that would take it past
  // INT64_MAX is rejected (never wrapped, never saturated).
  int64_t max_amount_fen = 100'000'000;
  // Window of calendar years (China Standard Time, UTC+8) of the dates and
  // years of events: visit start and end times, delivery dates, plan and plan
  // item years, income years. Validation is stateless (no receipt time), so
  // the window is fixed. Defaults 2000 and 2100.
  int min_year = 2000;
  int max_year = 2100;
  // The assessment rules' settings (ServerConfig.assessment): the aggregates
  // the reports read are kept at commit (domain/assessment/aggregates.h).
  assessment::AssessmentOptions assessment;
};

class ShuanglianPolicy : public sync::MergePolicy {
 public:
  explicit ShuanglianPolicy(DomainOptions options = {}) : options_(options) {}

  // HouseholdRegistered: a new household lives in the village it is
  // registered in.
  bool CreatesSubject(const v1::Event& event) const override;
  // A registered household is created in its village (area_code).
  std::optional<v1::SubjectRef> HomeOfCreatedSubject(const v1::Event& event) const override;
  // Households, villages, areas (counties), units, cadres, users, devices:
  // never members or plans (they live inside their household's state).
  bool IsEventSubjectKind(v1::SubjectKind kind) const override;
  // The 12-digit national admin-area code (DOMAIN.md "Entities").
  std::optional<std::string> CheckAreaCode(std::string_view area_code) const override;
  std::optional<sync::Rejection> Validate(const v1::Event& event,
                                          const sync::Author& author) const override;
  sync::References ReferencesOf(const v1::Event& event) const override;
  std::optional<sync::Rejection> CheckReference(const v1::Event& event, const sync::Author& author,
                                                const sync::References::EventRef& ref,
                                                const v1::Event& referenced,
                                                std::string_view referenced_actor) const override;
  absl::StatusOr<sync::MergeResult> Merge(const v1::Event& event, const sync::EventMeta& meta,
                                          sync::ProjectionView& view) const override;
  // The subject's state (dom/st/<subject>/...) and Snapshot.areas: the area
  // the subject lives in (a household's village, a village's or county's
  // own) and its ancestors, for display.
  absl::Status AppendSnapshot(const sync::ProjectionReader& reader, const v1::SubjectRef& subject,
                              v1::Snapshot* out) const override;
  // The conflicts an event's writes opened (WriteOutcome.conflict_id) and the
  // one a ConflictResolved closed, read from dom/conflict/<id>.
  absl::Status AppendConflictsOf(
      const sync::ProjectionReader& reader, const v1::StoredEvent& stored,
      google::protobuf::RepeatedPtrField<v1::Conflict>* out) const override;

  const DomainOptions& options() const { return options_; }

 private:
  const DomainOptions options_;
};

}  // namespace fieldsync::domain
