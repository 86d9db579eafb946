#include "domain/assessment/aggregates.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "domain/domain_keys.h"
#include "google/protobuf/util/time_util.h"
#include "sync/event_codec.h"
#include "base/status_macros.h"

namespace fieldsync::domain::assessment {

using google::protobuf::util::TimeUtil;

bool IsLevel(size_t length) {
  for (size_t level : kLevels) {
    if (level == length) return true;
  }
  return false;
}

size_t LevelAtOrAbove(size_t length) {
  size_t out = kLevels[0];
  for (size_t level : kLevels) {
    if (level <= length) out = level;
  }
  return out;
}

namespace keys {
std::string Subject(const std::string& subject_key) { return absl::StrCat("dom/as/s/", subject_key); }
std::string Cadre(const std::string& user_id) { return absl::StrCat("dom/as/c/", user_id); }
std::string PhotoGroup(const std::string& sha256) {
  return absl::StrCat("dom/as/ph/", absl::BytesToHexString(sha256));
}
std::string SubjectContribution(const std::string& subject_key) {
  return absl::StrCat("dom/as/sc/", subject_key);
}
std::string LevelRoot(const std::string& kind, const std::string& level_prefix) {
  return absl::StrFormat("dom/as/%s/%02d/%s/", kind, level_prefix.size(), level_prefix);
}
std::string ScanRoot(const std::string& kind, const std::string& prefix) {
  if (IsLevel(prefix.size())) return LevelRoot(kind, prefix);
  const size_t level = LevelAtOrAbove(prefix.size());
  return LevelRoot(kind, prefix.substr(0, level));
}
std::string GroupLeaders(const std::string& county) {
  return absl::StrCat("dom/as/glu/", county);
}
std::string Hex8(uint32_t value) { return absl::StrFormat("%08x", value); }
std::string Hex16(uint64_t value) { return absl::StrFormat("%016x", value); }
}  // namespace keys

bool StatusNeedsLink(v1::HouseholdStatus status) {
  switch (status) {
    case v1::HOUSEHOLD_STATUS_IDENTIFIED:
    case v1::HOUSEHOLD_STATUS_NOT_EXITED:
    case v1::HOUSEHOLD_STATUS_PRE_EXIT:
    case v1::HOUSEHOLD_STATUS_RETURNED:
    case v1::HOUSEHOLD_STATUS_MONITORED:
      return true;
    default:
      return false;
  }
}

namespace {

uint64_t Fnv1a(std::string_view bytes) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::vector<std::string> LevelPrefixes(const std::string& area) {
  std::vector<std::string> out;
  for (size_t level : kLevels) {
    if (area.size() >= level) out.push_back(area.substr(0, level));
  }
  return out;
}

// A contribution being computed: deltas by (scope, counter, day) and index
// entries by key.
struct Computed {
  std::map<std::tuple<std::string, int, Day>, int64_t> deltas;
  std::map<std::string, std::string> index;

  void AddSpans(const std::string& scope, Counter counter, const Spans& spans) {
    for (const auto& [from, to] : spans) {
      deltas[{scope, counter, from}] += 1;
      if (to != kForever) deltas[{scope, counter, to + 1}] -= 1;
    }
  }

  in::AsContribution ToRecord() const {
    in::AsContribution out;
    for (const auto& [key, delta] : deltas) {
      if (delta == 0) continue;
      in::AsDelta* d = out.add_deltas();
      d->set_scope(std::get<0>(key));
      d->set_counter(std::get<1>(key));
      d->set_day(std::get<2>(key));
      d->set_delta(delta);
    }
    for (const auto& [key, value] : index) {
      out.add_index_keys(key);
      out.add_index_hashes(Fnv1a(value));
    }
    return out;
  }
};

Computed ComputeSubject(const in::AsSubject& s, const AssessmentOptions&) {
  Computed out;
  const std::string& area = s.area_code();
  const Spans need = NeedSpans(s);
  const Spans cover = Intersect(need, CoverSpans(s));
  const std::string subject_key =
      absl::StrCat(s.kind() == v1::SUBJECT_KIND_HOUSEHOLD ? "household/" : "village/", s.id());
  std::vector<std::pair<v1::PlanKind, std::string>> plans;  // (kind, unit) ever required.
  if (s.kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
    out.AddSpans(area, kHouseholdsRequiringLink, need);
    out.AddSpans(area, kHouseholdsCovered, cover);
    out.AddSpans(area, kPlansRequired, need);
    out.AddSpans(area, kPlansPresent,
                 Intersect(need, PlanPresentAllYears(s, v1::PLAN_KIND_HOUSEHOLD_EXIT, "")));
    if (!need.empty()) plans.emplace_back(v1::PLAN_KIND_HOUSEHOLD_EXIT, "");
  } else {
    out.AddSpans(area, kPoorVillages, need);
    out.AddSpans(area, kVillagesCovered, cover);
    out.AddSpans(area, kPlansRequired, need);
    out.AddSpans(area, kPlansPresent,
                 Intersect(need, PlanPresentAllYears(s, v1::PLAN_KIND_VILLAGE, "")));
    if (!need.empty()) plans.emplace_back(v1::PLAN_KIND_VILLAGE, "");
    for (const std::string& unit : LinkedUnits(s)) {
      const Spans required = UnitPlanRequiredSpans(s, unit);
      out.AddSpans(area, kPlansRequired, required);
      out.AddSpans(area, kPlansPresent,
                   Intersect(required, PlanPresentAllYears(s, v1::PLAN_KIND_UNIT, unit)));
      if (!required.empty()) plans.emplace_back(v1::PLAN_KIND_UNIT, unit);
    }
  }
  const std::vector<GapRun> gaps = GapRuns(s);
  for (const std::string& prefix : LevelPrefixes(area)) {
    for (const GapRun& run : gaps) {
      in::AsGap gap;
      gap.set_from(run.from);
      gap.set_to(run.to);
      gap.set_never_linked(run.never_linked);
      gap.set_open_since(run.never_linked ? run.from : run.after_link);
      gap.set_last_link_id(run.last_link_id);
      out.index[absl::StrCat(keys::LevelRoot("g", prefix), keys::Hex8(run.from), "/",
                             subject_key)] = gap.SerializeAsString();
    }
    for (const auto& [kind, unit] : plans) {
      out.index[absl::StrCat(keys::LevelRoot("mp", prefix), static_cast<int>(kind), "/", s.id(),
                             std::string(1, '\0'), unit)] = subject_key;
    }
  }
  return out;
}

// A cadre's contribution is the sum of two independent parts: the cadre's
// own (kCadres, kCadresMeetingAll and its "ci" entries: functions of its
// links, rank and counted visit days) and one term per live visit (kVisits,
// kFlaggedVisits and its "f" entries: functions of the visit, the live visit
// just before it and the photo groups of its photos). The commit step uses
// the split to recompute only the terms an event can change.
void AddCadreOwn(const in::AsCadre& cadre, const AssessmentOptions& options, Computed& out) {
  std::set<std::string> prefixes;
  for (const in::AsLink& link : cadre.links()) {
    if (!link.cadre()) continue;
    for (const std::string& prefix : LevelPrefixes(link.area_code())) prefixes.insert(prefix);
  }
  if (prefixes.empty()) return;
  const Spans meets = MeetsAllSpans(cadre, options);
  const std::string nul(1, '\0');
  for (const std::string& prefix : prefixes) {
    const Spans in_scope = CadreInScopeSpans(cadre, prefix);
    const std::string scope = absl::StrCat("=", prefix);
    out.AddSpans(scope, kCadres, in_scope);
    out.AddSpans(scope, kCadresMeetingAll, Intersect(in_scope, meets));
    out.index[absl::StrCat(keys::LevelRoot("ci", prefix), cadre.unit_id(), nul, cadre.name(), nul,
                           cadre.user_id())] = "";
  }
}

void AddVisitTerm(const in::AsCadre& cadre, const in::AsVisit& visit, const in::AsVisit* earlier,
                  const std::map<std::string, in::AsPhotoGroup>& groups,
                  const AssessmentOptions& options, Computed& out) {
  const Day start = DayOf(absl::FromUnixMillis(visit.start_ms()), options.time_zone);
  const int year = YearOf(start);
  // Year counters (aggregates.h): no end delta on the next 1 January.
  const Spans counted = {{start, kForever}};
  out.AddSpans(visit.area_code(), kVisits, counted);
  const std::vector<v1::EvidenceFlag> flags = FlagVisit(visit, earlier, groups, options);
  if (flags.empty()) return;
  out.AddSpans(visit.area_code(), kFlaggedVisits, counted);
  for (const v1::EvidenceFlag& base : flags) {
    v1::EvidenceFlag flag = base;
    flag.add_event_ids(visit.event_id());
    flag.add_offsets(visit.offset());
    flag.set_cadre_id(cadre.user_id());
    flag.mutable_subject()->set_kind(static_cast<v1::SubjectKind>(visit.subject_kind()));
    flag.mutable_subject()->set_id(visit.subject_id());
    flag.set_area_code(visit.area_code());
    *flag.mutable_visit_time() = TimeUtil::MillisecondsToTimestamp(visit.start_ms());
    const std::string photo =
        flag.has_duplicate_photo() ? absl::BytesToHexString(flag.duplicate_photo().photo_sha256())
                                   : "";
    const std::string value = sync::DeterministicBytes(flag);
    for (const std::string& prefix : LevelPrefixes(visit.area_code())) {
      out.index[absl::StrCat(keys::LevelRoot("f", prefix), year, "/",
                             keys::Hex16(static_cast<uint64_t>(visit.start_ms())), "/",
                             keys::Hex16(visit.offset()), "/", static_cast<int>(flag.kind()), "/",
                             photo)] = value;
    }
  }
}

Computed ComputeCadre(const in::AsCadre& cadre,
                      const std::map<std::string, in::AsPhotoGroup>& groups,
                      const AssessmentOptions& options) {
  Computed out;
  AddCadreOwn(cadre, options, out);
  const std::vector<const in::AsVisit*> live = LiveVisits(cadre);
  for (size_t i = 0; i < live.size(); ++i) {
    AddVisitTerm(cadre, *live[i], i > 0 ? live[i - 1] : nullptr, groups, options, out);
  }
  return out;
}

template <typename M>
absl::StatusOr<std::optional<M>> Load(sync::ProjectionView& view, const std::string& key) {
  ASSIGN_OR_RETURN(std::optional<std::string> bytes, view.Get(key));
  if (!bytes) return std::optional<M>();
  M message;
  if (!message.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("assessment record ", key, " does not parse"));
  }
  return std::optional<M>(std::move(message));
}

void Save(sync::ProjectionView& view, std::string_view key,
          const google::protobuf::MessageLite& message) {
  view.Put(key, sync::DeterministicBytes(message));
}

// Adds `diff` (deltas by scope, counter and day) to the counter buckets.
absl::Status AddToCounters(sync::ProjectionView& view,
                           const std::map<std::tuple<std::string, int, Day>, int64_t>& diff) {
  // Counter buckets: (level prefix, bucket) -> deltas to add.
  std::map<std::pair<std::string, uint32_t>, std::map<std::pair<int, Day>, int64_t>> buckets;
  for (const auto& [key, delta] : diff) {
    if (delta == 0) continue;
    const auto& [scope, counter, day] = key;
    std::vector<std::string> prefixes;
    if (!scope.empty() && scope[0] == '=') {
      prefixes.push_back(scope.substr(1));
    } else {
      prefixes = LevelPrefixes(scope);
    }
    for (const std::string& prefix : prefixes) {
      buckets[{prefix, static_cast<uint32_t>(day) / kBucketDays}][{counter, day}] += delta;
    }
  }
  for (const auto& [where, deltas] : buckets) {
    const std::string key = absl::StrCat(keys::LevelRoot("n", where.first), keys::Hex8(where.second));
    ASSIGN_OR_RETURN(std::optional<in::AsCounterBucket> bucket,
                     Load<in::AsCounterBucket>(view, key));
    std::map<std::pair<int, Day>, int64_t> merged;
    if (bucket) {
      for (const in::AsDelta& d : bucket->deltas()) merged[{d.counter(), d.day()}] += d.delta();
    }
    for (const auto& [counter_day, delta] : deltas) merged[counter_day] += delta;
    in::AsCounterBucket out;
    for (const auto& [counter_day, delta] : merged) {
      if (delta == 0) continue;
      in::AsDelta* d = out.add_deltas();
      d->set_counter(counter_day.first);
      d->set_day(counter_day.second);
      d->set_delta(delta);
    }
    if (out.deltas_size() == 0) {
      view.Delete(key);
    } else {
      Save(view, key, out);
    }
  }
  return absl::OkStatus();
}

// Writes the difference between the stored contribution under
// `contribution_key` and `now`.
absl::Status WriteDifference(sync::ProjectionView& view, const std::string& contribution_key,
                             const Computed& now) {
  ASSIGN_OR_RETURN(std::optional<in::AsContribution> old,
                   Load<in::AsContribution>(view, contribution_key));
  if (!old) old.emplace();
  std::map<std::tuple<std::string, int, Day>, int64_t> diff = now.deltas;
  for (const in::AsDelta& d : old->deltas()) diff[{d.scope(), d.counter(), d.day()}] -= d.delta();
  RETURN_IF_ERROR(AddToCounters(view, diff));
  // Index entries: delete the ones gone, write the new and the changed.
  std::map<std::string, uint64_t> old_index;
  for (int i = 0; i < old->index_keys_size(); ++i) {
    old_index[old->index_keys(i)] = i < old->index_hashes_size() ? old->index_hashes(i) : 0;
  }
  for (const auto& [key, hash] : old_index) {
    if (!now.index.count(key)) view.Delete(key);
  }
  for (const auto& [key, value] : now.index) {
    auto it = old_index.find(key);
    if (it == old_index.end() || it->second != Fnv1a(value)) view.Put(key, value);
  }
  in::AsContribution record = now.ToRecord();
  if (record.deltas_size() == 0 && record.index_keys_size() == 0) {
    if (old->deltas_size() > 0 || old->index_keys_size() > 0) view.Delete(contribution_key);
  } else {
    Save(view, contribution_key, record);
  }
  return absl::OkStatus();
}

// Writes the difference between two contributions computed in memory: the
// cadre's before and after an event. No contribution record is read or kept
// for cadres: the one before is derived from the cadre's records as they were.
absl::Status ApplyDifference(sync::ProjectionView& view, const Computed& before,
                             const Computed& now) {
  std::map<std::tuple<std::string, int, Day>, int64_t> diff = now.deltas;
  for (const auto& [key, delta] : before.deltas) diff[key] -= delta;
  RETURN_IF_ERROR(AddToCounters(view, diff));
  for (const auto& [key, value] : before.index) {
    if (!now.index.count(key)) view.Delete(key);
  }
  for (const auto& [key, value] : now.index) {
    auto it = before.index.find(key);
    if (it == before.index.end() || it->second != value) view.Put(key, value);
  }
  return absl::OkStatus();
}

absl::Status RecomputeSubject(sync::ProjectionView& view, const std::string& subject_key,
                              const AssessmentOptions& options) {
  ASSIGN_OR_RETURN(std::optional<in::AsSubject> subject,
                   Load<in::AsSubject>(view, keys::Subject(subject_key)));
  Computed now;
  if (subject) now = ComputeSubject(*subject, options);
  return WriteDifference(view, keys::SubjectContribution(subject_key), now);
}

absl::Status LoadGroups(sync::ProjectionView& view, const in::AsCadre& cadre,
                        std::map<std::string, in::AsPhotoGroup>& groups) {
  for (const in::AsVisit& visit : cadre.visits()) {
    if (visit.withdrawn()) continue;
    for (const std::string& photo : visit.photos()) {
      if (groups.count(photo)) continue;
      ASSIGN_OR_RETURN(std::optional<in::AsPhotoGroup> group,
                       Load<in::AsPhotoGroup>(view, keys::PhotoGroup(photo)));
      groups[photo] = group ? *std::move(group) : in::AsPhotoGroup();
    }
  }
  return absl::OkStatus();
}

// The cadre's live visits as indices into visits(), in LiveVisits' order.
std::vector<int> LiveOrder(const in::AsCadre& cadre) {
  std::vector<int> out;
  for (int i = 0; i < cadre.visits_size(); ++i) {
    if (!cadre.visits(i).withdrawn()) out.push_back(i);
  }
  std::stable_sort(out.begin(), out.end(), [&](int a, int b) {
    const in::AsVisit& x = cadre.visits(a);
    const in::AsVisit& y = cadre.visits(b);
    if (x.start_ms() != y.start_ms()) return x.start_ms() < y.start_ms();
    return x.offset() < y.offset();
  });
  return out;
}

constexpr int kNotLive = -2;
constexpr int kFirst = -1;

// For each index < n: the index of the live visit before it, kFirst, or
// kNotLive.
std::vector<int> Predecessors(const in::AsCadre& cadre, int n) {
  std::vector<int> out(static_cast<size_t>(n), kNotLive);
  const std::vector<int> order = LiveOrder(cadre);
  for (size_t k = 0; k < order.size(); ++k) {
    out[static_cast<size_t>(order[k])] = k == 0 ? kFirst : order[k - 1];
  }
  return out;
}

// One visit of a cadre changed (recorded, corrected or withdrawn: index
// `changed` of after.visits(), before.visits() lacking it when it is new),
// turning no photo group duplicate or back (so every photo's IsDuplicate, all
// a flag reads of a group, is the same before and after, and the groups as
// they are now serve both sides): the cadre's own part is recomputed, and the terms
// of the visits whose record or predecessor changed (the changed visit and
// its successors in the old and new order); every other term is the same on
// both sides, so the difference is exact without recomputing it.
absl::Status ApplyVisitChange(sync::ProjectionView& view, const in::AsCadre& before,
                              const in::AsCadre& after, int changed,
                              const AssessmentOptions& options) {
  const int n = after.visits_size();
  const std::vector<int> pred_before = Predecessors(before, n);
  const std::vector<int> pred_after = Predecessors(after, n);
  std::vector<int> affected;
  for (int i = 0; i < n; ++i) {
    const int b = pred_before[static_cast<size_t>(i)], a = pred_after[static_cast<size_t>(i)];
    if (i == changed || a != b || a == changed || b == changed) affected.push_back(i);
  }
  // The groups of the affected visits' photos, before and after.
  std::map<std::string, in::AsPhotoGroup> groups;
  auto load = [&](const google::protobuf::RepeatedPtrField<std::string>& photos) -> absl::Status {
    for (const std::string& photo : photos) {
      if (groups.count(photo)) continue;
      ASSIGN_OR_RETURN(std::optional<in::AsPhotoGroup> group,
                       Load<in::AsPhotoGroup>(view, keys::PhotoGroup(photo)));
      groups[photo] = group ? *std::move(group) : in::AsPhotoGroup();
    }
    return absl::OkStatus();
  };
  for (int i : affected) {
    RETURN_IF_ERROR(load(after.visits(i).photos()));
    if (i < before.visits_size()) RETURN_IF_ERROR(load(before.visits(i).photos()));
  }
  Computed old_part, new_part;
  AddCadreOwn(before, options, old_part);
  AddCadreOwn(after, options, new_part);
  for (int i : affected) {
    const int b = pred_before[static_cast<size_t>(i)], a = pred_after[static_cast<size_t>(i)];
    if (b != kNotLive) {
      AddVisitTerm(before, before.visits(i), b == kFirst ? nullptr : &before.visits(b), groups,
                   options, old_part);
    }
    if (a != kNotLive) {
      AddVisitTerm(after, after.visits(i), a == kFirst ? nullptr : &after.visits(a), groups,
                   options, new_part);
    }
  }
  return ApplyDifference(view, old_part, new_part);
}

// A change of the cadre's links, name, unit or rank: only its own part
// depends on them.
absl::Status ApplyCadreOwnChange(sync::ProjectionView& view, const in::AsCadre& before,
                                 const in::AsCadre& after, const AssessmentOptions& options) {
  Computed old_part, new_part;
  AddCadreOwn(before, options, old_part);
  AddCadreOwn(after, options, new_part);
  return ApplyDifference(view, old_part, new_part);
}

// The day an event without times of its own takes effect: its device_time's
// day, unless the device's clock was judged skewed at push (then receipt).
bool ClockSkewed(const sync::EventMeta& meta, const AssessmentOptions& options) {
  if (meta.hlc_flagged) return true;
  return meta.push_clock_offset.has_value() &&
         absl::AbsDuration(*meta.push_clock_offset) > options.device_time_skew;
}

Day EffectiveDay(const v1::Event& event, const sync::EventMeta& meta,
                 const AssessmentOptions& options) {
  if (!event.has_device_time() || ClockSkewed(meta, options)) {
    return DayOf(meta.received_at, options.time_zone);
  }
  return DayOf(absl::FromUnixSeconds(event.device_time().seconds()), options.time_zone);
}

absl::StatusOr<in::AsCadre> LoadOrNewCadre(sync::ProjectionView& view, const std::string& user_id) {
  ASSIGN_OR_RETURN(std::optional<in::AsCadre> cadre, Load<in::AsCadre>(view, keys::Cadre(user_id)));
  if (cadre) return *std::move(cadre);
  in::AsCadre out;
  out.set_user_id(user_id);
  ASSIGN_OR_RETURN(std::optional<v1::User> user, Load<v1::User>(view, domain::keys::User(user_id)));
  if (user) {
    out.set_name(user->name());
    out.set_unit_id(user->unit_id());
    out.set_rank(user->rank());
  }
  return out;
}

absl::StatusOr<in::AsSubject> LoadOrNewSubject(sync::ProjectionView& view,
                                               const v1::SubjectRef& ref,
                                               const std::string& area_code) {
  ASSIGN_OR_RETURN(std::optional<in::AsSubject> subject,
                   Load<in::AsSubject>(view, keys::Subject(sync::SubjectKey(ref))));
  if (subject) return *std::move(subject);
  in::AsSubject out;
  out.set_kind(ref.kind());
  out.set_id(ref.id());
  out.set_area_code(area_code);
  return out;
}

// Brings the record's household mirror (status, name, location) up to the
// domain's projection; true if the status changed.
absl::StatusOr<bool> SyncHousehold(sync::ProjectionView& view, in::AsSubject& subject, Day day,
                                   uint64_t offset) {
  v1::SubjectRef ref;
  ref.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  ref.set_id(subject.id());
  ASSIGN_OR_RETURN(std::optional<v1::Household> household,
                   Load<v1::Household>(view, domain::keys::Household(sync::SubjectKey(ref))));
  if (!household) return false;
  subject.set_display_name(household->head_name());
  subject.set_has_location(household->has_location());
  subject.set_lat(household->location().lat());
  subject.set_lng(household->location().lng());
  const bool first = subject.need_size() == 0;
  if (!first && subject.status() == household->status()) return false;
  const bool needs = StatusNeedsLink(household->status());
  const bool needed = !first && StatusNeedsLink(static_cast<v1::HouseholdStatus>(subject.status()));
  subject.set_status(household->status());
  if (first || needs != needed) {
    in::AsNeedStep* step = subject.add_need();
    step->set_day(day);
    step->set_needs(needs);
    step->set_offset(offset);
  }
  return true;
}

in::AsLink ToAsLink(const v1::Link& link) {
  in::AsLink out;
  out.set_link_id(link.id());
  out.set_cadre(link.has_cadre_id());
  out.set_holder_id(link.has_cadre_id() ? link.cadre_id() : link.unit_id());
  out.set_target_kind(link.target().kind());
  out.set_target_id(link.target().id());
  out.set_area_code(link.area_code());
  out.set_role(link.role());
  out.set_from(DayOfDate(link.valid_from()));
  out.set_to(link.has_valid_to() ? DayOfDate(link.valid_to()) : kForever);
  out.set_offset(link.started_offset());
  return out;
}

void UpsertLink(google::protobuf::RepeatedPtrField<in::AsLink>& links, const in::AsLink& link) {
  for (in::AsLink& existing : links) {
    if (existing.link_id() == link.link_id()) {
      existing = link;
      return;
    }
  }
  *links.Add() = link;
}

absl::Status ApplyLink(const v1::Event& event, sync::ProjectionView& view,
                       const AssessmentOptions& options) {
  const std::string& link_id =
      event.has_link_started() ? event.link_started().link_id() : event.link_ended().link_id();
  ASSIGN_OR_RETURN(std::optional<std::string> target_key,
                   view.Get(domain::keys::LinkTarget(link_id)));
  if (!target_key) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::optional<v1::Link> link,
                   Load<v1::Link>(view, domain::keys::Link(*target_key, link_id)));
  if (!link) return absl::OkStatus();
  const in::AsLink as = ToAsLink(*link);
  const v1::SubjectKind kind = link->target().kind();
  if (kind == v1::SUBJECT_KIND_HOUSEHOLD || kind == v1::SUBJECT_KIND_VILLAGE) {
    ASSIGN_OR_RETURN(in::AsSubject subject,
                     LoadOrNewSubject(view, link->target(),
                                      kind == v1::SUBJECT_KIND_VILLAGE ? link->target().id()
                                                                       : link->area_code()));
    UpsertLink(*subject.mutable_links(), as);
    Save(view, keys::Subject(*target_key), subject);
    RETURN_IF_ERROR(RecomputeSubject(view, *target_key, options));
  }
  if (kind == v1::SUBJECT_KIND_AREA && link->role() == v1::LINK_ROLE_GROUP_LEADER_UNIT) {
    // The county's group-leader units, for the information service.
    const std::string key = keys::GroupLeaders(link->target().id().substr(0, 6));
    ASSIGN_OR_RETURN(std::optional<in::AsSubject> county, Load<in::AsSubject>(view, key));
    if (!county) county.emplace();
    UpsertLink(*county->mutable_links(), as);
    Save(view, key, *county);
  }
  if (link->has_cadre_id()) {
    ASSIGN_OR_RETURN(in::AsCadre cadre, LoadOrNewCadre(view, link->cadre_id()));
    const in::AsCadre before = cadre;
    UpsertLink(*cadre.mutable_links(), as);
    Save(view, keys::Cadre(cadre.user_id()), cadre);
    RETURN_IF_ERROR(ApplyCadreOwnChange(view, before, cadre, options));
  }
  return absl::OkStatus();
}

// Adds (or removes) the visit's photo uses; returns the cadres sharing them.
absl::Status UpdatePhotoUses(sync::ProjectionView& view, const std::string& cadre_id,
                             const in::AsVisit& visit, bool add, std::set<std::string>& cadres) {
  std::set<std::string> seen;
  for (const std::string& photo : visit.photos()) {
    if (!seen.insert(photo).second) continue;
    const std::string key = keys::PhotoGroup(photo);
    ASSIGN_OR_RETURN(std::optional<in::AsPhotoGroup> group, Load<in::AsPhotoGroup>(view, key));
    if (!group) group.emplace();
    auto* uses = group->mutable_uses();
    uses->erase(std::remove_if(uses->begin(), uses->end(),
                               [&](const in::AsPhotoUse& use) {
                                 return use.device_id() == visit.device_id() &&
                                        use.event_id() == visit.event_id();
                               }),
                uses->end());
    if (add) {
      in::AsPhotoUse* use = group->add_uses();
      use->set_cadre_id(cadre_id);
      use->set_device_id(visit.device_id());
      use->set_event_id(visit.event_id());
      use->set_subject_kind(visit.subject_kind());
      use->set_subject_id(visit.subject_id());
      use->set_area_code(visit.area_code());
      use->set_start_ms(visit.start_ms());
      use->set_offset(visit.offset());
    }
    for (const in::AsPhotoUse& use : group->uses()) cadres.insert(use.cadre_id());
    if (group->uses_size() == 0) {
      view.Delete(key);
    } else {
      Save(view, key, *group);
    }
  }
  return absl::OkStatus();
}

int64_t Millis(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

void SetTimesAndPhotos(in::AsVisit& visit, const v1::VisitRecorded& body) {
  if (body.has_start_time()) visit.set_start_ms(Millis(body.start_time()));
  if (body.has_end_time()) visit.set_end_ms(Millis(body.end_time()));
  if (body.photo_sha256_size() > 0) {
    visit.clear_photos();
    for (const std::string& photo : body.photo_sha256()) visit.add_photos(photo);
  }
}

void SetFix(in::AsVisit& visit, const v1::Event& event) {
  if (!event.has_location()) return;
  visit.set_has_fix(true);
  visit.set_lat(event.location().lat());
  visit.set_lng(event.location().lng());
  visit.set_accuracy_m(event.location().accuracy_m());
}

// The stored groups of `photos` (absent: nullopt), unless already taken.
absl::Status SnapshotGroups(sync::ProjectionView& view,
                            const google::protobuf::RepeatedPtrField<std::string>& photos,
                            std::map<std::string, std::optional<in::AsPhotoGroup>>& out) {
  for (const std::string& photo : photos) {
    if (out.count(photo)) continue;
    ASSIGN_OR_RETURN(out[photo], Load<in::AsPhotoGroup>(view, keys::PhotoGroup(photo)));
  }
  return absl::OkStatus();
}

absl::Status ApplyVisit(const v1::Event& event, const sync::EventMeta& meta,
                        sync::ProjectionView& view, const AssessmentOptions& options) {
  const std::string& cadre_id = meta.author.actor;
  ASSIGN_OR_RETURN(in::AsCadre cadre, LoadOrNewCadre(view, cadre_id));
  const in::AsCadre before = cadre;
  std::set<std::string> cadres = {cadre_id};
  // The photo groups the event changes, as they were before it.
  std::map<std::string, std::optional<in::AsPhotoGroup>> groups_before;
  int changed = -1;
  if (event.has_visit_recorded()) {
    in::AsVisit visit;
    visit.set_event_id(event.event_id());
    visit.set_device_id(event.device_id());
    visit.set_offset(meta.offset);
    visit.set_subject_kind(event.subject().kind());
    visit.set_subject_id(event.subject().id());
    visit.set_area_code(event.area_code());
    SetTimesAndPhotos(visit, event.visit_recorded());
    SetFix(visit, event);
    if (meta.push_clock_offset) {
      visit.set_skew_measured(true);
      visit.set_skew_ms(absl::ToInt64Milliseconds(*meta.push_clock_offset));
    }
    visit.set_hlc_flagged(meta.hlc_flagged);
    if (event.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
      ASSIGN_OR_RETURN(std::optional<v1::Household> household,
                       Load<v1::Household>(view, domain::keys::Household(
                                                     sync::SubjectKey(event.subject()))));
      if (household && household->has_location()) {
        visit.set_has_target_location(true);
        visit.set_target_lat(household->location().lat());
        visit.set_target_lng(household->location().lng());
      }
    }
    RETURN_IF_ERROR(SnapshotGroups(view, visit.photos(), groups_before));
    RETURN_IF_ERROR(UpdatePhotoUses(view, cadre_id, visit, true, cadres));
    *cadre.add_visits() = std::move(visit);
    changed = cadre.visits_size() - 1;
  } else {
    const v1::VisitCorrected& body = event.visit_corrected();
    // The original: the first visit in log order with that id, of the same
    // subject, by the same user (the engine's reference rule).
    in::AsVisit* original = nullptr;
    for (int i = 0; i < cadre.visits_size(); ++i) {
      in::AsVisit& visit = *cadre.mutable_visits(i);
      if (visit.event_id() == body.original_event_id() &&
          visit.subject_kind() == event.subject().kind() &&
          visit.subject_id() == event.subject().id() &&
          (original == nullptr || visit.offset() < original->offset())) {
        original = &visit;
        changed = i;
      }
    }
    if (original == nullptr || original->withdrawn()) return absl::OkStatus();
    RETURN_IF_ERROR(SnapshotGroups(view, original->photos(), groups_before));
    RETURN_IF_ERROR(SnapshotGroups(view, body.corrected().photo_sha256(), groups_before));
    RETURN_IF_ERROR(UpdatePhotoUses(view, cadre_id, *original, false, cadres));
    if (body.withdrawn()) {
      original->set_withdrawn(true);
    } else {
      SetTimesAndPhotos(*original, body.corrected());
      SetFix(*original, event);
      RETURN_IF_ERROR(UpdatePhotoUses(view, cadre_id, *original, true, cadres));
    }
  }
  Save(view, keys::Cadre(cadre_id), cadre);
  // A visit's DUPLICATE_PHOTO flags depend on its photos' groups only through
  // IsDuplicate (two subjects or more): while no group the event changed
  // turns duplicate or back, no other visit's flags change.
  bool duplicate_changed = false;
  for (const auto& [photo, group] : groups_before) {
    ASSIGN_OR_RETURN(std::optional<in::AsPhotoGroup> now,
                     Load<in::AsPhotoGroup>(view, keys::PhotoGroup(photo)));
    if ((group && IsDuplicate(*group)) != (now && IsDuplicate(*now))) duplicate_changed = true;
  }
  if (!duplicate_changed) return ApplyVisitChange(view, before, cadre, changed, options);
  // A photo group turned duplicate or back: the flags of every cadre using
  // one of its photos may change, so each of them is recomputed whole, before
  // (with the groups as they were) and after.
  for (const std::string& id : cadres) {
    std::optional<in::AsCadre> other;
    if (id != cadre_id) {
      ASSIGN_OR_RETURN(other, Load<in::AsCadre>(view, keys::Cadre(id)));
      if (!other) continue;
    }
    const in::AsCadre& old_record = other ? *other : before;
    const in::AsCadre& new_record = other ? *other : cadre;
    std::map<std::string, in::AsPhotoGroup> old_groups, new_groups;
    RETURN_IF_ERROR(LoadGroups(view, new_record, new_groups));
    RETURN_IF_ERROR(LoadGroups(view, old_record, old_groups));
    for (const auto& [photo, group] : groups_before) {
      if (old_groups.count(photo)) old_groups[photo] = group ? *group : in::AsPhotoGroup();
    }
    RETURN_IF_ERROR(ApplyDifference(view, ComputeCadre(old_record, old_groups, options),
                                    ComputeCadre(new_record, new_groups, options)));
  }
  return absl::OkStatus();
}

absl::Status ApplyPlan(const v1::Event& event, const sync::EventMeta& meta,
                       sync::ProjectionView& view, const AssessmentOptions& options) {
  const std::string subject_key = sync::SubjectKey(event.subject());
  const v1::PlanRevised& body = event.plan_revised();
  ASSIGN_OR_RETURN(std::optional<v1::Plan> plan,
                   Load<v1::Plan>(view, domain::keys::Plan(subject_key, body.plan_id())));
  if (!plan) return absl::OkStatus();
  ASSIGN_OR_RETURN(in::AsSubject subject,
                   LoadOrNewSubject(view, event.subject(), event.area_code()));
  in::AsPlan* record = nullptr;
  for (in::AsPlan& p : *subject.mutable_plans()) {
    if (p.plan_id() == body.plan_id()) record = &p;
  }
  if (record == nullptr) {
    record = subject.add_plans();
    record->set_plan_id(body.plan_id());
  }
  record->set_kind(plan->kind());
  record->set_year(plan->year());
  record->set_unit_id(plan->unit_id());
  in::AsPlanRev* rev = record->add_revs();
  rev->set_day(EffectiveDay(event, meta, options));
  rev->set_has_items(plan->items_size() > 0);
  rev->set_offset(meta.offset);
  Save(view, keys::Subject(subject_key), subject);
  return RecomputeSubject(view, subject_key, options);
}

absl::Status ApplyHousehold(const v1::Event& event, const sync::EventMeta& meta,
                            sync::ProjectionView& view, const AssessmentOptions& options) {
  const std::string subject_key = sync::SubjectKey(event.subject());
  ASSIGN_OR_RETURN(std::optional<in::AsSubject> existing,
                   Load<in::AsSubject>(view, keys::Subject(subject_key)));
  if (!existing && !event.has_household_registered()) return absl::OkStatus();
  in::AsSubject subject;
  if (existing) {
    subject = *std::move(existing);
  } else {
    subject.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    subject.set_id(event.subject().id());
    subject.set_area_code(event.area_code());
  }
  if (subject.need_size() == 0 && !event.has_household_registered()) {
    // Linked before it was registered here: the first status comes now.
  }
  const std::string before = subject.SerializeAsString();
  ASSIGN_OR_RETURN(bool status_changed,
                   SyncHousehold(view, subject, EffectiveDay(event, meta, options), meta.offset));
  if (!status_changed && subject.SerializeAsString() == before) return absl::OkStatus();
  Save(view, keys::Subject(subject_key), subject);
  return RecomputeSubject(view, subject_key, options);
}

absl::Status ApplyAreas(const v1::Event& event, const sync::EventMeta& meta,
                        sync::ProjectionView& view, const AssessmentOptions& options) {
  const Day day = EffectiveDay(event, meta, options);
  for (const v1::Area& area : event.area_imported().areas()) {
    if (area.level() != v1::AREA_LEVEL_VILLAGE) continue;
    v1::SubjectRef ref;
    ref.set_kind(v1::SUBJECT_KIND_VILLAGE);
    ref.set_id(area.code());
    const std::string subject_key = sync::SubjectKey(ref);
    ASSIGN_OR_RETURN(std::optional<in::AsSubject> existing,
                     Load<in::AsSubject>(view, keys::Subject(subject_key)));
    // Villages that never were poor and have no record need none.
    if (!existing && !area.designated_poor()) continue;
    in::AsSubject subject;
    if (existing) {
      subject = *std::move(existing);
    } else {
      subject.set_kind(v1::SUBJECT_KIND_VILLAGE);
      subject.set_id(area.code());
      subject.set_area_code(area.code());
    }
    bool changed = subject.display_name() != area.name();
    subject.set_display_name(area.name());
    const bool poor_now = subject.need_size() > 0 && subject.need().rbegin()->needs();
    if (area.designated_poor() != poor_now) {
      in::AsNeedStep* step = subject.add_need();
      step->set_day(day);
      step->set_needs(area.designated_poor());
      step->set_offset(meta.offset);
      changed = true;
    }
    if (!changed) continue;
    Save(view, keys::Subject(subject_key), subject);
    RETURN_IF_ERROR(RecomputeSubject(view, subject_key, options));
  }
  return absl::OkStatus();
}

absl::Status ApplyUser(const v1::Event& event, sync::ProjectionView& view,
                       const AssessmentOptions& options) {
  const v1::User& user = event.user_upserted().user();
  ASSIGN_OR_RETURN(std::optional<in::AsCadre> cadre, Load<in::AsCadre>(view, keys::Cadre(user.id())));
  if (!cadre) return absl::OkStatus();  // Made with the user's record when it first matters.
  if (cadre->name() == user.name() && cadre->unit_id() == user.unit_id() &&
      cadre->rank() == user.rank()) {
    return absl::OkStatus();
  }
  const in::AsCadre before = *cadre;
  cadre->set_name(user.name());
  cadre->set_unit_id(user.unit_id());
  cadre->set_rank(user.rank());
  Save(view, keys::Cadre(user.id()), *cadre);
  return ApplyCadreOwnChange(view, before, *cadre, options);
}

absl::Status ApplyFeedback(const v1::Event& event, const sync::EventMeta& meta,
                           sync::ProjectionView& view, const AssessmentOptions& options) {
  const v1::FeedbackFiled& body = event.feedback_filed();
  v1::FeedbackEntry entry;
  entry.set_event_id(event.event_id());
  entry.set_offset(meta.offset);
  const std::string county = event.area_code().substr(0, 6);
  entry.set_county_code(county);
  *entry.mutable_subject() = event.subject();
  entry.set_area_code(event.area_code());
  entry.set_from_unit_id(body.from_unit_id());
  entry.set_actor(meta.author.actor);
  entry.set_kind(body.kind());
  entry.set_title(body.title());
  entry.set_content(body.content());
  *entry.mutable_filed_at() = event.device_time();
  ASSIGN_OR_RETURN(std::optional<in::AsSubject> leaders,
                   Load<in::AsSubject>(view, keys::GroupLeaders(county)));
  const Day day = EffectiveDay(event, meta, options);
  if (leaders) {
    for (const in::AsLink& link : leaders->links()) {
      if (link.holder_id() == body.from_unit_id() && link.from() <= day && day <= link.to()) {
        entry.set_from_group_leader_unit(true);
      }
    }
  }
  const std::string value = sync::DeterministicBytes(entry);
  for (const std::string& prefix : LevelPrefixes(event.area_code())) {
    view.Put(absl::StrCat(keys::LevelRoot("fb", prefix), county, "/",
                          absl::StrFormat("%02d", static_cast<int>(body.kind())), "/",
                          keys::Hex16(meta.offset)),
             value);
  }
  return absl::OkStatus();
}

absl::Status ApplyInspection(const v1::Event& event, const sync::EventMeta& meta,
                             sync::ProjectionView& view) {
  const v1::InspectionRecorded& body = event.inspection_recorded();
  v1::InspectionEntry entry;
  entry.set_event_id(event.event_id());
  entry.set_offset(meta.offset);
  *entry.mutable_subject() = event.subject();
  entry.set_area_code(event.area_code());
  entry.set_inspector_user_id(body.inspector_user_id());
  entry.set_inspector_name(body.inspector_name());
  entry.set_findings(body.findings());
  for (int flag : body.flags()) entry.add_flags(static_cast<v1::InspectionFlag>(flag));
  for (const std::string& id : body.event_ids()) entry.add_event_ids(id);
  entry.set_result(body.result());
  *entry.mutable_recorded_at() = event.device_time();
  entry.set_actor(meta.author.actor);
  const std::string value = sync::DeterministicBytes(entry);
  for (const std::string& prefix : LevelPrefixes(event.area_code())) {
    view.Put(absl::StrCat(keys::LevelRoot("in", prefix), sync::SubjectKey(event.subject()), "/",
                          keys::Hex16(meta.offset)),
             value);
  }
  return absl::OkStatus();
}

}  // namespace

in::AsContribution SubjectContributionOf(const in::AsSubject& subject,
                                         const AssessmentOptions& options) {
  return ComputeSubject(subject, options).ToRecord();
}

in::AsContribution CadreContributionOf(const in::AsCadre& cadre,
                                       const std::map<std::string, in::AsPhotoGroup>& groups,
                                       const AssessmentOptions& options) {
  return ComputeCadre(cadre, groups, options).ToRecord();
}

absl::Status ApplyAtCommit(const v1::Event& event, const sync::EventMeta& meta,
                           sync::ProjectionView& view, const AssessmentOptions& options) {
  if (!options.enabled) return absl::OkStatus();
  using B = v1::Event;
  switch (event.body_case()) {
    case B::kVisitRecorded:
    case B::kVisitCorrected:
      return ApplyVisit(event, meta, view, options);
    case B::kLinkStarted:
    case B::kLinkEnded:
      return ApplyLink(event, view, options);
    case B::kPlanRevised:
      return ApplyPlan(event, meta, view, options);
    case B::kAreaImported:
      return ApplyAreas(event, meta, view, options);
    case B::kUserUpserted:
      return ApplyUser(event, view, options);
    case B::kFeedbackFiled:
      return ApplyFeedback(event, meta, view, options);
    case B::kInspectionRecorded:
      return ApplyInspection(event, meta, view);
    default:
      if (event.subject().kind() == v1::SUBJECT_KIND_HOUSEHOLD) {
        return ApplyHousehold(event, meta, view, options);
      }
      return absl::OkStatus();
  }
}

}  // namespace fieldsync::domain::assessment
