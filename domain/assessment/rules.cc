#include "domain/assessment/rules.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string_view>
#include <vector>

#include "absl/time/civil_time.h"

namespace fieldsync::domain::assessment {
namespace {

const absl::CivilDay kEpoch(1970, 1, 1);

Day ToDay(absl::CivilDay day) { return static_cast<Day>(day - kEpoch); }

// Adds `day` days to a span end without passing kForever.
Day Next(Day day) { return day == kForever ? kForever : day + 1; }

Day DayOfMs(int64_t ms, absl::TimeZone tz) { return DayOf(absl::FromUnixMillis(ms), tz); }

bool SameTarget(const in::AsLink& link, int kind, const std::string& id) {
  return link.target_kind() == kind && link.target_id() == id;
}

// Whether the link is of the kind that covers `subject`: cadres cover
// households, units cover villages.
bool Covers(const in::AsLink& link, const in::AsSubject& subject) {
  if (!SameTarget(link, subject.kind(), subject.id()) || link.to() < link.from()) return false;
  return subject.kind() == v1::SUBJECT_KIND_HOUSEHOLD ? link.cadre() : !link.cadre();
}

template <typename Step>
std::vector<const Step*> InDayOrder(const google::protobuf::RepeatedPtrField<Step>& steps) {
  std::vector<const Step*> out;
  for (const Step& step : steps) out.push_back(&step);
  std::stable_sort(out.begin(), out.end(), [](const Step* a, const Step* b) {
    if (a->day() != b->day()) return a->day() < b->day();
    return a->offset() < b->offset();
  });
  return out;
}

uint32_t CountDays(const Spans& spans) {
  uint64_t n = 0;
  for (const auto& [from, to] : spans) n += static_cast<uint64_t>(to) - from + 1;
  return static_cast<uint32_t>(n);
}

}  // namespace

absl::TimeZone LoadProvinceTimeZone(const std::string& name) {
  absl::TimeZone tz;
  if (!name.empty() && absl::LoadTimeZone(name, &tz)) return tz;
  return absl::FixedTimeZone(8 * 3600);
}

Day DayOf(absl::Time t, absl::TimeZone tz) { return ToDay(absl::ToCivilDay(t, tz)); }
Day DayOfDate(int year, int month, int day) { return ToDay(absl::CivilDay(year, month, day)); }
Day DayOfDate(const v1::Date& date) { return DayOfDate(date.year(), date.month(), date.day()); }
v1::Date DateOfDay(Day day) {
  absl::CivilDay civil = kEpoch + day;
  v1::Date out;
  out.set_year(static_cast<int32_t>(civil.year()));
  out.set_month(civil.month());
  out.set_day(civil.day());
  return out;
}
int YearOf(Day day) { return static_cast<int>((kEpoch + day).year()); }
Day FirstDay(int year) { return DayOfDate(year, 1, 1); }
Day LastDay(int year) { return DayOfDate(year, 12, 31); }

Spans Normalized(Spans spans) {
  std::sort(spans.begin(), spans.end());
  Spans out;
  for (const Span& span : spans) {
    if (span.second < span.first) continue;
    if (!out.empty() && span.first <= Next(out.back().second)) {
      out.back().second = std::max(out.back().second, span.second);
    } else {
      out.push_back(span);
    }
  }
  return out;
}

Spans Intersect(const Spans& a, const Spans& b) {
  Spans out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    Day from = std::max(a[i].first, b[j].first);
    Day to = std::min(a[i].second, b[j].second);
    if (from <= to) out.emplace_back(from, to);
    if (a[i].second < b[j].second) {
      ++i;
    } else {
      ++j;
    }
  }
  return out;
}

Spans Subtract(const Spans& a, const Spans& b) {
  Spans out;
  size_t j = 0;
  for (Span span : a) {
    Day from = span.first;
    while (j < b.size() && b[j].second < from) ++j;
    size_t k = j;
    bool done = false;
    while (k < b.size() && b[k].first <= span.second) {
      if (b[k].first > from) out.emplace_back(from, b[k].first - 1);
      if (b[k].second >= span.second) {
        done = true;
        break;
      }
      from = b[k].second + 1;
      ++k;
    }
    if (!done && from <= span.second) out.emplace_back(from, span.second);
  }
  return out;
}

bool Contains(const Spans& spans, Day day) {
  for (const Span& span : spans) {
    if (span.first <= day && day <= span.second) return true;
  }
  return false;
}

Spans NeedSpans(const in::AsSubject& subject) {
  Spans out;
  bool needs = false;
  Day since = 0;
  for (const in::AsNeedStep* step : InDayOrder(subject.need())) {
    if (step->needs() == needs) continue;
    if (needs) out.emplace_back(since, step->day() - 1);
    needs = step->needs();
    since = step->day();
  }
  if (needs) out.emplace_back(since, kForever);
  return Normalized(std::move(out));
}

Spans CoverSpans(const in::AsSubject& subject) {
  Spans out;
  for (const in::AsLink& link : subject.links()) {
    if (Covers(link, subject)) out.emplace_back(link.from(), link.to());
  }
  return Normalized(std::move(out));
}

Spans PlanPresentSpans(const in::AsPlan& plan) {
  const Day first = FirstDay(plan.year());
  const Day last = LastDay(plan.year());
  Spans out;
  bool present = false;
  Day since = first;
  for (const in::AsPlanRev* rev : InDayOrder(plan.revs())) {
    const Day day = std::max(rev->day(), first);
    if (day > last) break;
    if (rev->has_items() == present) continue;
    if (present && day > since) out.emplace_back(since, day - 1);
    present = rev->has_items();
    since = day;
  }
  if (present) out.emplace_back(since, last);
  return Normalized(std::move(out));
}

const in::AsPlan* FindPlan(const in::AsSubject& subject, v1::PlanKind kind, int year,
                           const std::string& unit_id) {
  for (const in::AsPlan& plan : subject.plans()) {
    if (plan.kind() == kind && plan.year() == year &&
        (kind != v1::PLAN_KIND_UNIT || plan.unit_id() == unit_id)) {
      return &plan;
    }
  }
  return nullptr;
}

Spans PlanPresentAllYears(const in::AsSubject& subject, v1::PlanKind kind,
                          const std::string& unit_id) {
  Spans out;
  for (const in::AsPlan& plan : subject.plans()) {
    if (plan.kind() != kind || (kind == v1::PLAN_KIND_UNIT && plan.unit_id() != unit_id)) {
      continue;
    }
    for (const Span& span : PlanPresentSpans(plan)) out.push_back(span);
  }
  return Normalized(std::move(out));
}

std::vector<std::string> LinkedUnits(const in::AsSubject& village) {
  std::set<std::string> units;
  for (const in::AsLink& link : village.links()) {
    if (!link.cadre() && SameTarget(link, village.kind(), village.id())) {
      units.insert(link.holder_id());
    }
  }
  return {units.begin(), units.end()};
}

Spans UnitPlanRequiredSpans(const in::AsSubject& village, const std::string& unit_id) {
  Spans out;
  for (const in::AsLink& link : village.links()) {
    if (link.cadre() || link.holder_id() != unit_id || link.to() < link.from()) continue;
    out.emplace_back(link.from(), link.to() == kForever ? kForever : LastDay(YearOf(link.to())));
  }
  return Normalized(std::move(out));
}

std::vector<GapRun> GapRuns(const in::AsSubject& subject) {
  std::vector<GapRun> out;
  for (const Span& span : Subtract(NeedSpans(subject), CoverSpans(subject))) {
    GapRun run;
    run.from = span.first;
    run.to = span.second;
    // The last covering link that ended before the run: its valid_to + 1 opens it.
    for (const in::AsLink& link : subject.links()) {
      if (!Covers(link, subject) || link.to() == kForever || link.to() >= span.first) continue;
      if (run.never_linked || link.to() + 1 > run.after_link ||
          (link.to() + 1 == run.after_link && link.link_id() > run.last_link_id)) {
        run.never_linked = false;
        run.after_link = link.to() + 1;
        run.last_link_id = link.link_id();
      }
    }
    out.push_back(std::move(run));
  }
  return out;
}

Day GapOpenSince(const in::AsGap& gap, int year) {
  if (!gap.never_linked()) return gap.open_since();
  return std::max(FirstDay(year), gap.from());
}

std::vector<const in::AsVisit*> LiveVisits(const in::AsCadre& cadre) {
  std::vector<const in::AsVisit*> out;
  for (const in::AsVisit& visit : cadre.visits()) {
    if (!visit.withdrawn()) out.push_back(&visit);
  }
  std::stable_sort(out.begin(), out.end(), [](const in::AsVisit* a, const in::AsVisit* b) {
    if (a->start_ms() != b->start_ms()) return a->start_ms() < b->start_ms();
    return a->offset() < b->offset();
  });
  return out;
}

bool VisitCounts(const in::AsCadre& cadre, const in::AsVisit& visit, absl::TimeZone tz) {
  const Day start = DayOfMs(visit.start_ms(), tz);
  for (const in::AsLink& link : cadre.links()) {
    if (SameTarget(link, visit.subject_kind(), visit.subject_id()) && link.from() <= start &&
        start <= link.to()) {
      return true;
    }
  }
  return false;
}

Span VisitDays(const in::AsVisit& visit, absl::TimeZone tz) {
  const Day start = DayOfMs(visit.start_ms(), tz);
  return {start, std::max(start, DayOfMs(visit.end_ms(), tz))};
}

void AdjustCounted(in::AsCadre& cadre, const Span& days, int delta) {
  auto* counted = cadre.mutable_counted();
  auto it = std::lower_bound(counted->begin(), counted->end(), days,
                             [](const in::AsCounted& c, const Span& d) {
                               return std::make_pair(c.start_day(), c.end_day()) < d;
                             });
  if (it != counted->end() && it->start_day() == days.first && it->end_day() == days.second) {
    const int64_t count = static_cast<int64_t>(it->count()) + delta;
    if (count > 0) {
      it->set_count(static_cast<uint32_t>(count));
    } else {
      counted->erase(it);
    }
    return;
  }
  if (delta <= 0) return;
  const int at = static_cast<int>(it - counted->begin());
  in::AsCounted* added = counted->Add();
  added->set_start_day(days.first);
  added->set_end_day(days.second);
  added->set_count(static_cast<uint32_t>(delta));
  // Move the new entry (last) into its sorted place.
  for (int i = counted->size() - 1; i > at; --i) counted->SwapElements(i, i - 1);
}

void CountVisits(in::AsCadre& cadre, absl::TimeZone tz) {
  cadre.clear_counted();
  for (const in::AsVisit* visit : LiveVisits(cadre)) {
    if (VisitCounts(cadre, *visit, tz)) AdjustCounted(cadre, VisitDays(*visit, tz), 1);
  }
}

uint32_t HouseholdQuota(v1::CadreRank rank, const AssessmentOptions& options) {
  switch (rank) {
    case v1::CADRE_RANK_PROVINCIAL_LEADER:
      return options.quota_provincial_leader_households;
    case v1::CADRE_RANK_DEPARTMENT_RANK:
      return options.quota_department_rank_households;
    case v1::CADRE_RANK_COUNTY_RANK:
      return options.quota_county_rank_households;
    default:
      return options.quota_other_households;
  }
}

namespace {

// The counted visits' day spans (start day .. end day), any year.
struct CountedVisits {
  std::vector<Day> starts;        // Distinct start days, sorted.
  std::vector<uint64_t> through;  // Visits started on starts[0..i].
  Spans days;
  // Visits started in [from, to].
  uint64_t StartedIn(Day from, Day to) const {
    const size_t hi = std::upper_bound(starts.begin(), starts.end(), to) - starts.begin();
    const size_t lo = std::lower_bound(starts.begin(), starts.end(), from) - starts.begin();
    if (hi <= lo) return 0;
    return through[hi - 1] - (lo > 0 ? through[lo - 1] : 0);
  }
};
CountedVisits Counted(const in::AsCadre& cadre) {
  CountedVisits out;
  std::map<Day, uint64_t> by_start;
  for (const in::AsCounted& c : cadre.counted()) {
    by_start[c.start_day()] += c.count();
    out.days.emplace_back(c.start_day(), c.end_day());
  }
  uint64_t total = 0;
  for (const auto& [day, n] : by_start) {
    out.starts.push_back(day);
    out.through.push_back(total += n);
  }
  out.days = Normalized(std::move(out.days));
  return out;
}

bool ActiveIn(const in::AsLink& link, Day from, Day to) {
  return link.from() <= link.to() && link.from() <= to && link.to() >= from;
}

CadreYear Evaluate(const in::AsCadre& cadre, const CountedVisits& counted, int year, Day as_of,
                   const AssessmentOptions& options) {
  CadreYear out;
  const Day first = FirstDay(year);
  // Distinct ids as sorted views into the links (Evaluate runs a few times
  // per commit of a visit: MeetsAllSpans bisects over it).
  std::vector<std::string_view> households, villages, counties, village_counties;
  for (const in::AsLink& link : cadre.links()) {
    if (!link.cadre() || !ActiveIn(link, first, as_of)) continue;
    if (link.target_kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
      households.push_back(link.target_id());
    } else if (link.target_kind() == v1::SUBJECT_KIND_VILLAGE) {
      villages.push_back(link.target_id());
      village_counties.push_back(std::string_view(link.area_code()).substr(0, 6));
    } else if (link.target_kind() == v1::SUBJECT_KIND_AREA &&
               link.role() == v1::LINK_ROLE_COUNTY_LEADER) {
      counties.push_back(std::string_view(link.target_id()).substr(0, 6));
    }
  }
  auto distinct = [](std::vector<std::string_view>& ids) {
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids.size();
  };
  out.linked_households = static_cast<uint32_t>(distinct(households));
  out.linked_villages = static_cast<uint32_t>(distinct(villages));
  distinct(counties);
  distinct(village_counties);
  for (std::string_view county : counties) {
    if (std::binary_search(village_counties.begin(), village_counties.end(), county)) {
      ++out.linked_counties_with_village;
    }
  }
  const v1::CadreRank rank = static_cast<v1::CadreRank>(cadre.rank());
  out.household_quota = HouseholdQuota(rank, options);
  out.link_quota_met = out.linked_households >= out.household_quota;
  if (rank == v1::CADRE_RANK_PROVINCIAL_LEADER) {
    out.link_quota_met = out.link_quota_met && out.linked_counties_with_village >=
                                                   options.quota_provincial_leader_counties;
  }
  out.visits = static_cast<uint32_t>(
      std::min<uint64_t>(counted.StartedIn(first, as_of), UINT32_MAX));
  out.days_on_site = CountDays(Intersect(counted.days, {{first, as_of}}));
  out.visits_met = out.visits >= options.min_visits_per_year;
  out.days_met = out.days_on_site >= options.min_days_on_site;
  return out;
}

}  // namespace

CadreYear EvaluateCadre(const in::AsCadre& cadre, int year, Day as_of,
                        const AssessmentOptions& options) {
  return Evaluate(cadre, Counted(cadre), year, as_of, options);
}

Spans MeetsAllSpans(const in::AsCadre& cadre, const AssessmentOptions& options) {
  const CountedVisits counted = Counted(cadre);
  std::set<int> years;
  if (options.min_visits_per_year > 0 || options.min_days_on_site > 0) {
    for (const Span& span : counted.days) {
      for (int y = YearOf(span.first); y <= YearOf(span.second); ++y) years.insert(y);
    }
  } else {
    // Only the links matter: every year from the first link on, up to the
    // last dated end (an open link: the last start's year + 1).
    int low = 0, high = 0;
    bool any = false;
    for (const in::AsLink& link : cadre.links()) {
      if (link.to() < link.from()) continue;
      int from = YearOf(link.from());
      int to = link.to() == kForever ? from + 1 : YearOf(link.to());
      low = any ? std::min(low, from) : from;
      high = any ? std::max(high, to) : to;
      any = true;
    }
    for (int y = low; any && y <= high; ++y) years.insert(y);
  }
  Spans out;
  for (int year : years) {
    // Every requirement only grows with the as-of day within a year: the
    // first day on which all hold is found by bisection over the days on
    // which something changes.
    const Day first = FirstDay(year), last = LastDay(year);
    std::vector<Day> candidates = {first};
    for (const in::AsLink& link : cadre.links()) {
      if (link.from() >= first && link.from() <= last) candidates.push_back(link.from());
    }
    for (Day start : counted.starts) {
      if (start >= first && start <= last) candidates.push_back(start);
    }
    for (const Span& span : Intersect(counted.days, {{first, last}})) {
      // Days on site grow by one per day inside a span: any day may complete them.
      for (Day d = span.first; d <= span.second; ++d) candidates.push_back(d);
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    size_t low = 0, high = candidates.size();
    while (low < high) {
      size_t mid = (low + high) / 2;
      if (Evaluate(cadre, counted, year, candidates[mid], options).all_met()) {
        high = mid;
      } else {
        low = mid + 1;
      }
    }
    if (low < candidates.size()) out.emplace_back(candidates[low], last);
  }
  return Normalized(std::move(out));
}

Spans CadreInScopeSpans(const in::AsCadre& cadre, const std::string& prefix) {
  Spans out;
  for (const in::AsLink& link : cadre.links()) {
    if (!link.cadre() || link.to() < link.from()) continue;
    if (link.area_code().compare(0, prefix.size(), prefix) != 0) continue;
    out.emplace_back(link.from(), link.to() == kForever ? kForever : LastDay(YearOf(link.to())));
  }
  return Normalized(std::move(out));
}

double DistanceMetres(double lat1, double lng1, double lat2, double lng2) {
  constexpr double kEarthRadiusM = 6371008.8;
  constexpr double kRad = M_PI / 180.0;
  const double dlat = (lat2 - lat1) * kRad, dlng = (lng2 - lng1) * kRad;
  const double a = std::sin(dlat / 2) * std::sin(dlat / 2) +
                   std::cos(lat1 * kRad) * std::cos(lat2 * kRad) * std::sin(dlng / 2) *
                       std::sin(dlng / 2);
  return 2 * kEarthRadiusM * std::asin(std::min(1.0, std::sqrt(a)));
}

bool IsDuplicate(const in::AsPhotoGroup& group) {
  for (const in::AsPhotoUse& use : group.uses()) {
    if (use.subject_kind() != group.uses(0).subject_kind() ||
        use.subject_id() != group.uses(0).subject_id()) {
      return true;
    }
  }
  return false;
}

std::vector<v1::EvidenceFlag> FlagVisit(const in::AsVisit& visit, const in::AsVisit* earlier,
                                        const std::map<std::string, in::AsPhotoGroup>& photo_groups,
                                        const AssessmentOptions& options) {
  std::vector<v1::EvidenceFlag> out;
  const int64_t skew_ms = absl::ToInt64Milliseconds(options.device_time_skew);
  if (!visit.has_fix()) {
    v1::EvidenceFlag& flag = out.emplace_back();
    flag.set_kind(v1::EVIDENCE_FLAG_KIND_NO_FIX);
  } else if (visit.has_target_location()) {
    const double distance =
        DistanceMetres(visit.lat(), visit.lng(), visit.target_lat(), visit.target_lng());
    if (distance > options.gps_far_m) {
      v1::EvidenceFlag& flag = out.emplace_back();
      flag.set_kind(v1::EVIDENCE_FLAG_KIND_GPS_FAR);
      flag.mutable_gps_far()->set_distance_m(distance);
      flag.mutable_gps_far()->set_threshold_m(options.gps_far_m);
      flag.mutable_gps_far()->set_accuracy_m(visit.accuracy_m());
    }
  }
  if (earlier != nullptr && visit.has_fix() && earlier->has_fix()) {
    const double km =
        DistanceMetres(earlier->lat(), earlier->lng(), visit.lat(), visit.lng()) / 1000.0;
    const double hours = static_cast<double>(visit.start_ms() - earlier->end_ms()) / 3.6e6;
    // Overlapping visits at two places: no time at all to travel.
    const double speed = hours > 0 ? km / hours : (km > 0 ? HUGE_VAL : 0);
    if (speed > options.max_travel_kmh) {
      v1::EvidenceFlag& flag = out.emplace_back();
      flag.set_kind(v1::EVIDENCE_FLAG_KIND_IMPOSSIBLE_TRAVEL);
      flag.add_event_ids(earlier->event_id());
      flag.add_offsets(earlier->offset());
      v1::TravelDetail* travel = flag.mutable_travel();
      travel->set_distance_km(km);
      travel->set_hours(std::max(hours, 0.0));
      travel->set_speed_kmh(speed);
      travel->set_threshold_kmh(options.max_travel_kmh);
    }
  }
  std::set<std::string> seen;
  for (const std::string& photo : visit.photos()) {
    if (!seen.insert(photo).second) continue;
    auto it = photo_groups.find(photo);
    if (it == photo_groups.end() || !IsDuplicate(it->second)) continue;
    v1::EvidenceFlag& flag = out.emplace_back();
    flag.set_kind(v1::EVIDENCE_FLAG_KIND_DUPLICATE_PHOTO);
    flag.mutable_duplicate_photo()->set_photo_sha256(photo);
  }
  const bool skewed = visit.skew_measured() && std::abs(visit.skew_ms()) > skew_ms;
  if (skewed || visit.hlc_flagged()) {
    v1::EvidenceFlag& flag = out.emplace_back();
    flag.set_kind(v1::EVIDENCE_FLAG_KIND_DEVICE_TIME_SKEW);
    flag.mutable_time_skew()->set_skew_ms(visit.skew_ms());
    flag.mutable_time_skew()->set_threshold_ms(skew_ms);
    flag.mutable_time_skew()->set_hlc_flagged(visit.hlc_flagged());
  }
  return out;
}

std::vector<VisitFlags> FlagVisits(const in::AsCadre& cadre,
                                   const std::map<std::string, in::AsPhotoGroup>& photo_groups,
                                   const AssessmentOptions& options) {
  std::vector<VisitFlags> out;
  const std::vector<const in::AsVisit*> live = LiveVisits(cadre);
  for (size_t i = 0; i < live.size(); ++i) {
    VisitFlags entry;
    entry.visit = live[i];
    entry.flags = FlagVisit(*live[i], i > 0 ? live[i - 1] : nullptr, photo_groups, options);
    if (!entry.flags.empty()) out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace fieldsync::domain::assessment
