// The assessment and evidence reports, read from the aggregates kept at
// commit (aggregates.h): counters for the summary, ordered indexes for the
// pages. Nothing here reads the log.
//
// Thread-safe: reads of committed projections only.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "domain/assessment/rules.h"
#include "fieldsync/v1/report_service.pb.h"
#include "sync/merge_policy.h"

namespace fieldsync::domain::assessment {

// The as-of day of a report of `year` when the server's day is `today`: today
// for the current year, 31 December for a past one. INVALID_ARGUMENT for a
// year that has not begun.
absl::StatusOr<Day> AsOfDay(int year, Day today);

// INVALID_ARGUMENT unless `prefix` is an area level's length (2, 4, 6, 9 or
// 12 digits): the aggregates are kept per level.
absl::Status CheckLevelPrefix(const std::string& prefix);

// GetAssessment for `request` (scope_prefix and year already checked
// against the caller's scope); `page_size` already defaulted and capped.
absl::StatusOr<v1::GetAssessmentResponse> Assessment(const sync::ProjectionReader& reader,
                                                     const v1::GetAssessmentRequest& request,
                                                     Day today, size_t page_size,
                                                     const AssessmentOptions& options);

// Only the summary (a province report's cost without its pages).
absl::StatusOr<v1::AssessmentSummary> Summary(const sync::ProjectionReader& reader,
                                              const std::string& prefix, Day as_of);

absl::StatusOr<v1::GetEvidenceReportResponse> Evidence(const sync::ProjectionReader& reader,
                                                       const v1::GetEvidenceReportRequest& request,
                                                       Day today, size_t page_size,
                                                       const AssessmentOptions& options);

// Information service: FeedbackFiled under the prefix, by county, kind, log order.
absl::StatusOr<v1::ListFeedbackResponse> Feedback(const sync::ProjectionReader& reader,
                                                  const v1::ListFeedbackRequest& request,
                                                  size_t page_size);
// Inspection findings under the prefix, by subject, log order.
absl::StatusOr<v1::ListInspectionsResponse> Inspections(const sync::ProjectionReader& reader,
                                                        const v1::ListInspectionsRequest& request,
                                                        size_t page_size);

}  // namespace fieldsync::domain::assessment
