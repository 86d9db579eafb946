#include "domain/assessment/report.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "domain/assessment/aggregates.h"
#include "sync/event_codec.h"
#include "base/status_macros.h"

namespace fieldsync::domain::assessment {
namespace {

constexpr size_t kBatch = 512;

template <typename M>
absl::StatusOr<std::optional<M>> Load(const sync::ProjectionReader& reader, const std::string& key) {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes, reader.Get(key));
  if (!bytes) return std::optional<M>();
  M message;
  if (!message.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("assessment record ", key, " does not parse"));
  }
  return std::optional<M>(std::move(message));
}

// Calls `visit(key, value)` for the keys under `prefix` after `start_after`
// until it returns false.
template <typename F>
absl::Status ScanAll(const sync::ProjectionReader& reader, const std::string& prefix,
                     std::string start_after, F visit) {
  while (true) {
    ASSIGN_OR_RETURN(auto batch, reader.Scan(prefix, start_after, kBatch));
    for (auto& [key, value] : batch) {
      start_after = key;
      ASSIGN_OR_RETURN(bool more, visit(key, value));
      if (!more) return absl::OkStatus();
    }
    if (batch.size() < kBatch) return absl::OkStatus();
  }
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

absl::Status BadToken() { return absl::InvalidArgumentError("page_token is not a token of this report"); }

// Page tokens: "<prefix>|<year>|<section>|<hex position>".
struct Position {
  char section = 'c';
  std::string position;
};
std::string MakeToken(const std::string& prefix, int year, const Position& at) {
  return absl::StrCat(prefix, "|", year, "|", std::string(1, at.section), "|",
                      absl::BytesToHexString(at.position));
}
absl::StatusOr<Position> ParseToken(const std::string& token, const std::string& prefix, int year,
                                    std::string_view sections) {
  Position out;
  if (token.empty()) {
    out.section = sections[0];
    return out;
  }
  std::vector<std::string> parts = absl::StrSplit(token, '|');
  if (parts.size() != 4 || parts[0] != prefix || parts[1] != absl::StrCat(year) ||
      parts[2].size() != 1 || sections.find(parts[2][0]) == std::string_view::npos) {
    return BadToken();
  }
  for (char c : parts[3]) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return BadToken();
  }
  if (parts[3].size() % 2 != 0) return BadToken();
  out.section = parts[2][0];
  out.position = absl::HexStringToBytes(parts[3]);
  return out;
}

absl::StatusOr<std::map<std::string, in::AsPhotoGroup>> GroupsOf(const sync::ProjectionReader& reader,
                                                                 const in::AsCadre& cadre) {
  std::map<std::string, in::AsPhotoGroup> groups;
  for (const in::AsVisit& visit : cadre.visits()) {
    if (visit.withdrawn()) continue;
    for (const std::string& photo : visit.photos()) {
      if (groups.count(photo)) continue;
      ASSIGN_OR_RETURN(std::optional<in::AsPhotoGroup> group,
                       Load<in::AsPhotoGroup>(reader, keys::PhotoGroup(photo)));
      groups[photo] = group ? *std::move(group) : in::AsPhotoGroup();
    }
  }
  return groups;
}

std::vector<std::string> ActiveCadreHolders(const in::AsSubject& subject, Day day) {
  std::set<std::string> users;
  for (const in::AsLink& link : subject.links()) {
    if (link.cadre() && link.target_kind() == subject.kind() && link.target_id() == subject.id() &&
        link.from() <= day && day <= link.to()) {
      users.insert(link.holder_id());
    }
  }
  return {users.begin(), users.end()};
}

v1::SubjectRef RefOf(const in::AsSubject& subject) {
  v1::SubjectRef ref;
  ref.set_kind(static_cast<v1::SubjectKind>(subject.kind()));
  ref.set_id(subject.id());
  return ref;
}

}  // namespace

absl::StatusOr<Day> AsOfDay(int year, Day today) {
  if (today < FirstDay(year)) {
    return absl::InvalidArgumentError(absl::StrCat("year ", year, " has not begun"));
  }
  return std::min(today, LastDay(year));
}

absl::Status CheckLevelPrefix(const std::string& prefix) {
  if (IsLevel(prefix.size())) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("scope_prefix must be an area level's code prefix (2, 4, 6, 9 or 12 digits), "
                   "got ", prefix.size(), " digits"));
}

absl::StatusOr<v1::AssessmentSummary> Summary(const sync::ProjectionReader& reader,
                                              const std::string& prefix, Day as_of) {
  int64_t totals[kCounterCount] = {};
  const uint32_t last_bucket = static_cast<uint32_t>(as_of) / kBucketDays;
  const Day year_start = FirstDay(YearOf(as_of));
  RETURN_IF_ERROR(ScanAll(
      reader, keys::LevelRoot("n", prefix), "",
      [&](const std::string& key, const std::string& value) -> absl::StatusOr<bool> {
        uint32_t bucket = 0;
        if (key.size() < 8 || !absl::SimpleHexAtoi(key.substr(key.size() - 8), &bucket)) {
          return absl::DataLossError(absl::StrCat("counter key ", key, " is malformed"));
        }
        if (bucket > last_bucket) return false;
        in::AsCounterBucket record;
        if (!record.ParseFromString(value)) {
          return absl::DataLossError(absl::StrCat("counter ", key, " does not parse"));
        }
        for (const in::AsDelta& d : record.deltas()) {
          if (d.day() > as_of || d.counter() < 0 || d.counter() >= kCounterCount) continue;
          // Year counters count the deltas of the as-of day's year only.
          if (IsYearCounter(d.counter()) && d.day() < year_start) continue;
          totals[d.counter()] += d.delta();
        }
        return true;
      }));
  auto u = [&](Counter c) { return static_cast<uint32_t>(std::max<int64_t>(totals[c], 0)); };
  v1::AssessmentSummary out;
  out.set_cadres(u(kCadres));
  out.set_cadres_meeting_all(u(kCadresMeetingAll));
  out.set_households_requiring_link(u(kHouseholdsRequiringLink));
  out.set_households_covered(u(kHouseholdsCovered));
  out.set_poor_villages(u(kPoorVillages));
  out.set_villages_covered(u(kVillagesCovered));
  out.set_visits(u(kVisits));
  out.set_flagged_visits(u(kFlaggedVisits));
  out.set_plans_required(u(kPlansRequired));
  out.set_plans_present(u(kPlansPresent));
  return out;
}

absl::StatusOr<v1::GetAssessmentResponse> Assessment(const sync::ProjectionReader& reader,
                                                     const v1::GetAssessmentRequest& request,
                                                     Day today, size_t page_size,
                                                     const AssessmentOptions& options) {
  const std::string& prefix = request.scope_prefix();
  const int year = request.year();
  RETURN_IF_ERROR(CheckLevelPrefix(prefix));
  ASSIGN_OR_RETURN(const Day as_of, AsOfDay(year, today));
  ASSIGN_OR_RETURN(Position at, ParseToken(request.page_token(), prefix, year, "cgm"));
  v1::GetAssessmentResponse out;
  ASSIGN_OR_RETURN(*out.mutable_summary(), Summary(reader, prefix, as_of));
  page_size = std::max<size_t>(page_size, 1);
  // Entries of the page, with the position each ends at; one more than the
  // page tells whether a next page exists.
  size_t taken = 0;
  Position last;
  bool more = false;
  auto full = [&] { return taken > page_size; };
  auto take = [&](Position position) {
    if (++taken <= page_size) {
      last = std::move(position);
    } else {
      more = true;
    }
  };

  if (at.section == 'c') {
    RETURN_IF_ERROR(ScanAll(
        reader, keys::LevelRoot("ci", prefix), at.position,
        [&](const std::string& key, const std::string&) -> absl::StatusOr<bool> {
          const std::string user_id = key.substr(key.rfind('\0') + 1);
          ASSIGN_OR_RETURN(std::optional<in::AsCadre> cadre,
                           Load<in::AsCadre>(reader, keys::Cadre(user_id)));
          if (!cadre || !Contains(CadreInScopeSpans(*cadre, prefix), as_of)) return true;
          take({'c', key});
          if (full()) return false;
          RETURN_IF_ERROR(LoadVisits(reader, *cadre));
          const CadreYear y = EvaluateCadre(*cadre, year, as_of, options);
          v1::CadreAssessment* c = out.add_cadres();
          c->set_user_id(cadre->user_id());
          c->set_name(cadre->name());
          c->set_unit_id(cadre->unit_id());
          c->set_rank(static_cast<v1::CadreRank>(cadre->rank()));
          c->set_linked_households(y.linked_households);
          c->set_household_quota(y.household_quota);
          c->set_linked_villages(y.linked_villages);
          c->set_visits(y.visits);
          c->set_visits_required(options.min_visits_per_year);
          c->set_days_on_site(y.days_on_site);
          c->set_days_required(options.min_days_on_site);
          c->set_link_quota_met(y.link_quota_met);
          c->set_visits_met(y.visits_met);
          c->set_days_met(y.days_met);
          c->set_quota_met(y.all_met());
          ASSIGN_OR_RETURN(auto groups, GroupsOf(reader, *cadre));
          uint32_t flagged = 0;
          for (const VisitFlags& f : FlagVisits(*cadre, groups, options)) {
            const Day start = DayOf(absl::FromUnixMillis(f.visit->start_ms()), options.time_zone);
            if (StartsWith(f.visit->area_code(), prefix) && YearOf(start) == year &&
                start <= as_of) {
              ++flagged;
            }
          }
          c->set_flagged_visits(flagged);
          return true;
        }));
    at = {'g', ""};
  }
  if (!full() && at.section == 'g') {
    struct Open {
      Day open_since;
      std::string subject_key;
      in::AsGap gap;
    };
    std::vector<Open> gaps;
    const std::string root = keys::LevelRoot("g", prefix);
    RETURN_IF_ERROR(ScanAll(
        reader, root, "", [&](const std::string& key, const std::string& value) -> absl::StatusOr<bool> {
          uint32_t from = 0;
          if (!absl::SimpleHexAtoi(key.substr(root.size(), 8), &from)) {
            return absl::DataLossError(absl::StrCat("gap key ", key, " is malformed"));
          }
          if (static_cast<Day>(from) > as_of) return false;
          in::AsGap gap;
          if (!gap.ParseFromString(value)) {
            return absl::DataLossError(absl::StrCat("gap ", key, " does not parse"));
          }
          if (gap.to() < as_of) return true;
          gaps.push_back({GapOpenSince(gap, year), key.substr(root.size() + 9), std::move(gap)});
          return true;
        }));
    std::sort(gaps.begin(), gaps.end(), [](const Open& a, const Open& b) {
      if (a.open_since != b.open_since) return a.open_since < b.open_since;
      const std::string_view ia = std::string_view(a.subject_key).substr(a.subject_key.find('/') + 1);
      const std::string_view ib = std::string_view(b.subject_key).substr(b.subject_key.find('/') + 1);
      if (ia != ib) return ia < ib;
      return a.subject_key < b.subject_key;
    });
    size_t start = 0;
    if (!at.position.empty()) {
      if (!absl::SimpleAtoi(at.position, &start)) return BadToken();
    }
    for (size_t i = start; i < gaps.size() && !full(); ++i) {
      take({'g', absl::StrCat(i + 1)});
      if (full()) break;
      ASSIGN_OR_RETURN(std::optional<in::AsSubject> subject,
                       Load<in::AsSubject>(reader, keys::Subject(gaps[i].subject_key)));
      if (!subject) return absl::DataLossError(absl::StrCat("gap of unknown ", gaps[i].subject_key));
      v1::CoverageGap* g = out.add_coverage_gaps();
      const bool household = subject->kind() == v1::SUBJECT_KIND_HOUSEHOLD;
      g->set_kind(household ? v1::COVERAGE_GAP_KIND_HOUSEHOLD_WITHOUT_CADRE
                            : v1::COVERAGE_GAP_KIND_VILLAGE_WITHOUT_UNIT);
      *g->mutable_subject() = RefOf(*subject);
      g->set_area_code(subject->area_code());
      g->set_display_name(subject->display_name());
      if (household) g->set_status(static_cast<v1::HouseholdStatus>(subject->status()));
      *g->mutable_open_since() = DateOfDay(gaps[i].open_since);
      const uint32_t days_open = static_cast<uint32_t>(as_of - gaps[i].open_since);
      g->set_days_open(days_open);
      g->set_in_grace_period(days_open <= options.replacement_grace_days);
      g->set_last_link_id(gaps[i].gap.last_link_id());
    }
    if (!full()) at = {'m', ""};
  }
  if (!full() && at.section == 'm') {
    std::map<std::string, in::AsSubject> cache;
    RETURN_IF_ERROR(ScanAll(
        reader, keys::LevelRoot("mp", prefix), at.position,
        [&](const std::string& key, const std::string& subject_key) -> absl::StatusOr<bool> {
          auto it = cache.find(subject_key);
          if (it == cache.end()) {
            ASSIGN_OR_RETURN(std::optional<in::AsSubject> subject,
                             Load<in::AsSubject>(reader, keys::Subject(subject_key)));
            if (!subject) return true;
            it = cache.emplace(subject_key, *std::move(subject)).first;
          }
          const in::AsSubject& s = it->second;
          const std::string rest = key.substr(keys::LevelRoot("mp", prefix).size());
          int kind = rest.empty() ? 0 : rest[0] - '0';
          const std::string unit = key.substr(key.rfind('\0') + 1);
          bool required = false;
          const in::AsPlan* plan = FindPlan(s, static_cast<v1::PlanKind>(kind), year, unit);
          if (kind == v1::PLAN_KIND_UNIT) {
            required = Contains(UnitPlanRequiredSpans(s, unit), as_of);
          } else {
            required = Contains(NeedSpans(s), as_of);
          }
          if (!required || (plan != nullptr && Contains(PlanPresentSpans(*plan), as_of))) {
            return true;
          }
          take({'m', key});
          if (full()) return false;
          v1::MissingPlan* m = out.add_missing_plans();
          m->set_kind(static_cast<v1::PlanKind>(kind));
          *m->mutable_subject() = RefOf(s);
          m->set_area_code(s.area_code());
          m->set_year(year);
          if (kind == v1::PLAN_KIND_UNIT) {
            m->set_unit_id(unit);
          } else {
            for (const std::string& user : ActiveCadreHolders(s, as_of)) {
              m->add_responsible_user_ids(user);
            }
          }
          return true;
        }));
  }
  if (more) out.set_next_page_token(MakeToken(prefix, year, last));
  return out;
}

absl::StatusOr<v1::GetEvidenceReportResponse> Evidence(const sync::ProjectionReader& reader,
                                                       const v1::GetEvidenceReportRequest& request,
                                                       Day today, size_t page_size,
                                                       const AssessmentOptions& options) {
  const std::string& prefix = request.scope_prefix();
  const int year = request.year();
  RETURN_IF_ERROR(CheckLevelPrefix(prefix));
  ASSIGN_OR_RETURN(const Day as_of, AsOfDay(year, today));
  ASSIGN_OR_RETURN(Position at, ParseToken(request.page_token(), prefix, year, "f"));
  page_size = std::max<size_t>(page_size, 1);
  std::set<int> kinds(request.kinds().begin(), request.kinds().end());
  v1::GetEvidenceReportResponse out;
  std::map<int32_t, uint32_t> counts;
  size_t taken = 0;
  std::string last;
  bool more = false;
  const std::string root = absl::StrCat(keys::LevelRoot("f", prefix), year, "/");
  RETURN_IF_ERROR(ScanAll(
      reader, root, "", [&](const std::string& key, const std::string& value) -> absl::StatusOr<bool> {
        v1::EvidenceFlag flag;
        if (!flag.ParseFromString(value)) {
          return absl::DataLossError(absl::StrCat("evidence flag ", key, " does not parse"));
        }
        const Day start = DayOf(absl::FromUnixSeconds(flag.visit_time().seconds()), options.time_zone);
        if (start > as_of) return false;
        if (flag.kind() == v1::EVIDENCE_FLAG_KIND_DUPLICATE_PHOTO) {
          // One flag per photo: at the first of its visits in scope and year,
          // listing those visits (none outside the caller's scope).
          ASSIGN_OR_RETURN(std::optional<in::AsPhotoGroup> group,
                           Load<in::AsPhotoGroup>(reader, keys::PhotoGroup(
                                                              flag.duplicate_photo().photo_sha256())));
          if (!group) return true;
          std::vector<const in::AsPhotoUse*> uses;
          for (const in::AsPhotoUse& use : group->uses()) {
            const Day day = DayOf(absl::FromUnixMillis(use.start_ms()), options.time_zone);
            if (StartsWith(use.area_code(), prefix) && YearOf(day) == year && day <= as_of) {
              uses.push_back(&use);
            }
          }
          std::sort(uses.begin(), uses.end(), [](const in::AsPhotoUse* a, const in::AsPhotoUse* b) {
            if (a->start_ms() != b->start_ms()) return a->start_ms() < b->start_ms();
            return a->offset() < b->offset();
          });
          if (uses.empty() || uses[0]->offset() != flag.offsets(0)) return true;
          flag.clear_event_ids();
          flag.clear_offsets();
          std::vector<std::pair<int, std::string>> subjects;
          for (const in::AsPhotoUse* use : uses) {
            flag.add_event_ids(use->event_id());
            flag.add_offsets(use->offset());
            std::pair<int, std::string> subject(use->subject_kind(), use->subject_id());
            if (std::find(subjects.begin(), subjects.end(), subject) == subjects.end()) {
              subjects.push_back(subject);
              v1::SubjectRef* ref = flag.mutable_duplicate_photo()->add_subjects();
              ref->set_kind(static_cast<v1::SubjectKind>(subject.first));
              ref->set_id(subject.second);
            }
          }
        }
        ++counts[flag.kind()];
        if (key <= at.position) return true;
        if (!kinds.empty() && !kinds.count(flag.kind())) return true;
        if (!request.cadre_id().empty() && flag.cadre_id() != request.cadre_id()) return true;
        if (taken == page_size) {
          more = true;
          return true;  // Counts go on over the whole scope and year.
        }
        ++taken;
        last = key;
        *out.add_flags() = std::move(flag);
        return true;
      }));
  for (const auto& [kind, count] : counts) (*out.mutable_counts_by_kind())[kind] = count;
  if (more) out.set_next_page_token(MakeToken(prefix, year, {'f', last}));
  return out;
}

namespace {

// A paged scan of one index whose values are `Entry` messages.
template <typename Entry, typename Response, typename Keep>
absl::StatusOr<Response> ListIndex(const sync::ProjectionReader& reader, const std::string& root,
                                   const std::string& token_scope, const std::string& page_token,
                                   size_t page_size, Keep keep) {
  ASSIGN_OR_RETURN(Position at, ParseToken(page_token, token_scope, 0, "l"));
  page_size = std::max<size_t>(page_size, 1);
  Response out;
  std::string last;
  RETURN_IF_ERROR(ScanAll(
      reader, root, at.position,
      [&](const std::string& key, const std::string& value) -> absl::StatusOr<bool> {
        Entry entry;
        if (!entry.ParseFromString(value)) {
          return absl::DataLossError(absl::StrCat("index entry ", key, " does not parse"));
        }
        if (!keep(entry)) return true;
        if (static_cast<size_t>(out.entries_size()) == page_size) {
          out.set_next_page_token(MakeToken(token_scope, 0, {'l', last}));
          return false;
        }
        last = key;
        *out.add_entries() = std::move(entry);
        return true;
      }));
  return out;
}

}  // namespace

absl::StatusOr<v1::ListFeedbackResponse> Feedback(const sync::ProjectionReader& reader,
                                                  const v1::ListFeedbackRequest& request,
                                                  size_t page_size) {
  RETURN_IF_ERROR(CheckLevelPrefix(request.scope_prefix()));
  if (!v1::FeedbackKind_IsValid(request.kind())) {
    return absl::InvalidArgumentError(absl::StrCat("kind ", request.kind(), " is not a FeedbackKind"));
  }
  return ListIndex<v1::FeedbackEntry, v1::ListFeedbackResponse>(
      reader, keys::LevelRoot("fb", request.scope_prefix()),
      absl::StrCat("fb", request.scope_prefix(), ".", request.kind(), ".",
                   request.group_leader_units_only()),
      request.page_token(), page_size, [&](const v1::FeedbackEntry& e) {
        return (request.kind() == v1::FEEDBACK_KIND_UNSPECIFIED || e.kind() == request.kind()) &&
               (!request.group_leader_units_only() || e.from_group_leader_unit());
      });
}

absl::StatusOr<v1::ListInspectionsResponse> Inspections(const sync::ProjectionReader& reader,
                                                        const v1::ListInspectionsRequest& request,
                                                        size_t page_size) {
  RETURN_IF_ERROR(CheckLevelPrefix(request.scope_prefix()));
  std::string root = keys::LevelRoot("in", request.scope_prefix());
  if (request.has_subject()) {
    if (request.subject().kind() == v1::SUBJECT_KIND_UNSPECIFIED ||
        !v1::SubjectKind_IsValid(request.subject().kind()) || request.subject().id().empty()) {
      return absl::InvalidArgumentError("subject needs a kind and an id");
    }
    root = absl::StrCat(root, sync::SubjectKey(request.subject()), "/");
  }
  return ListIndex<v1::InspectionEntry, v1::ListInspectionsResponse>(
      reader, root, absl::StrCat("in", root), request.page_token(), page_size,
      [](const v1::InspectionEntry&) { return true; });
}

}  // namespace fieldsync::domain::assessment
