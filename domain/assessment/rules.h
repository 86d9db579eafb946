// The assessment rules (考核評價) and evidence flags (調研督查) of issue 11, as
// pure functions of the records the commit step keeps (records.proto): the
// calendar, which visits count for a cadre, days on site, link quotas by rank,
// coverage gaps, required plans and the evidence flags. docs/assessment.md
// states the same rules in words; every number is an AssessmentOptions field.
//
// Days are day numbers (days since 1970-01-01 in the province's time zone);
// kForever is "no end". Interval sets are sorted, disjoint, inclusive spans.
//
// Thread-safe: functions of their arguments only.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "fieldsync/internal/assessment_records.pb.h"
#include "fieldsync/v1/common.pb.h"
#include "fieldsync/v1/report_service.pb.h"

namespace fieldsync::domain::assessment {

namespace in = ::fieldsync::internal;

using Day = int32_t;
inline constexpr Day kForever = std::numeric_limits<int32_t>::max();

// Thresholds (config.proto AssessmentConfig; each default as documented there).
struct AssessmentOptions {
  // False: no aggregates are kept at commit (assessment.enabled).
  bool enabled = true;
  // The province's time zone (assessment.time_zone): absl::LoadTimeZone, and
  // if the zone database lacks it, a fixed UTC+8 offset.
  absl::TimeZone time_zone = absl::FixedTimeZone(8 * 3600);
  uint32_t min_visits_per_year = 4;
  uint32_t min_days_on_site = 30;
  uint32_t replacement_grace_days = 30;
  uint32_t quota_provincial_leader_households = 5;
  uint32_t quota_provincial_leader_counties = 2;
  uint32_t quota_department_rank_households = 3;
  uint32_t quota_county_rank_households = 2;
  uint32_t quota_other_households = 1;
  double gps_far_m = 1000;
  double max_travel_kmh = 120;
  absl::Duration device_time_skew = absl::Minutes(10);
};

// "Asia/Shanghai" etc.; a name the zone database lacks (or "") gives UTC+8.
absl::TimeZone LoadProvinceTimeZone(const std::string& name);

// --- Calendar --------------------------------------------------------------
Day DayOf(absl::Time t, absl::TimeZone tz);
Day DayOfDate(int year, int month, int day);
Day DayOfDate(const v1::Date& date);
v1::Date DateOfDay(Day day);
int YearOf(Day day);
Day FirstDay(int year);
Day LastDay(int year);

// --- Interval sets ---------------------------------------------------------
using Span = std::pair<Day, Day>;  // Inclusive.
using Spans = std::vector<Span>;
// Sorted, merged (adjacent spans join).
Spans Normalized(Spans spans);
Spans Intersect(const Spans& a, const Spans& b);
Spans Subtract(const Spans& a, const Spans& b);
bool Contains(const Spans& spans, Day day);

// --- Subjects (coverage, plans) --------------------------------------------
// Days on which the subject needs a link (its need steps in (day, offset) order).
Spans NeedSpans(const in::AsSubject& subject);
// Days covered by a link of the kind that covers the subject: a cadre's
// household link for a household, a unit's link for a village.
Spans CoverSpans(const in::AsSubject& subject);
// Days on which `plan` has items: a revision takes effect on its day (a revision
// made before its year from 1 January), the last in (day, offset) order holds;
// clipped to the plan's year.
Spans PlanPresentSpans(const in::AsPlan& plan);
// The plan of `kind` (and unit) for `year`, or null.
const in::AsPlan* FindPlan(const in::AsSubject& subject, v1::PlanKind kind, int year,
                           const std::string& unit_id);
// Days on which some plan of `kind` (and unit) has items, over all years.
Spans PlanPresentAllYears(const in::AsSubject& subject, v1::PlanKind kind,
                          const std::string& unit_id);
// Units holding links to the village, sorted.
std::vector<std::string> LinkedUnits(const in::AsSubject& village);
// Days on which unit `unit_id` owes a plan for the village: a link active at
// any time of a year makes the plan of that year required, from its first day
// on (never before the link's valid_from).
Spans UnitPlanRequiredSpans(const in::AsSubject& village, const std::string& unit_id);

// One maximal run of days on which the subject needs a link and has none.
struct GapRun {
  Day from = 0;
  Day to = 0;
  bool never_linked = true;  // No covering link ended before `from`.
  Day after_link = 0;        // Last covering link's valid_to + 1 (when linked before).
  std::string last_link_id;
};
std::vector<GapRun> GapRuns(const in::AsSubject& subject);
// The gap's open day in a report of `year`: the day after the last link's
// valid_to, or, if never linked, the later of 1 January and `from`.
Day GapOpenSince(const in::AsGap& gap, int year);

// --- Cadres ----------------------------------------------------------------
// A visit as the rules see it: corrections applied; withdrawn ones dropped.
// The live visits of a cadre, sorted by (start, offset).
std::vector<const in::AsVisit*> LiveVisits(const in::AsCadre& cadre);
// True if the cadre held a link to the visit's subject on the visit's start day.
bool VisitCounts(const in::AsCadre& cadre, const in::AsVisit& visit, absl::TimeZone tz);
// The days a visit touches: (start day, end day), the end never before the start.
Span VisitDays(const in::AsVisit& visit, absl::TimeZone tz);
// Adds `delta` visits touching `days` to cadre.counted (kept sorted, no zero counts).
void AdjustCounted(in::AsCadre& cadre, const Span& days, int delta);
// Sets cadre.counted from cadre.visits (loaded whole) and its links.
void CountVisits(in::AsCadre& cadre, absl::TimeZone tz);

uint32_t HouseholdQuota(v1::CadreRank rank, const AssessmentOptions& options);

// A cadre's year as of `as_of` (a day in `year`), from its links, rank and
// counted visits (cadre.counted; cadre.visits is not read).
struct CadreYear {
  uint32_t linked_households = 0;
  uint32_t linked_villages = 0;
  uint32_t linked_counties_with_village = 0;
  uint32_t household_quota = 0;
  uint32_t visits = 0;
  uint32_t days_on_site = 0;
  bool link_quota_met = false;
  bool visits_met = false;
  bool days_met = false;
  bool all_met() const { return link_quota_met && visits_met && days_met; }
};
CadreYear EvaluateCadre(const in::AsCadre& cadre, int year, Day as_of,
                        const AssessmentOptions& options);
// Days on which the cadre meets every requirement of the day's year (so far).
Spans MeetsAllSpans(const in::AsCadre& cadre, const AssessmentOptions& options);
// Days on which the cadre counts as "a cadre with a link in scope during the
// year" for links whose target area starts with `prefix`.
Spans CadreInScopeSpans(const in::AsCadre& cadre, const std::string& prefix);

// --- Evidence --------------------------------------------------------------
double DistanceMetres(double lat1, double lng1, double lat2, double lng2);

// Flags of a cadre's live visits. `photo_groups` maps a photo hash to its
// group (the live visits using it, all cadres). Keyed by (device, event).
struct VisitFlags {
  const in::AsVisit* visit = nullptr;
  std::vector<v1::EvidenceFlag> flags;  // Without cadre/subject/area/visit_time.
};
// The flags of one live visit; `earlier` is the cadre's live visit just
// before it in (start, offset) order, or null. A visit's flags depend on
// nothing else of the cadre: the commit step recomputes only the visits
// whose own record or predecessor changed (aggregates.cc).
std::vector<v1::EvidenceFlag> FlagVisit(const in::AsVisit& visit, const in::AsVisit* earlier,
                                        const std::map<std::string, in::AsPhotoGroup>& photo_groups,
                                        const AssessmentOptions& options);
std::vector<VisitFlags> FlagVisits(const in::AsCadre& cadre,
                                   const std::map<std::string, in::AsPhotoGroup>& photo_groups,
                                   const AssessmentOptions& options);
// True if the group's uses name at least two distinct subjects.
bool IsDuplicate(const in::AsPhotoGroup& group);

}  // namespace fieldsync::domain::assessment
