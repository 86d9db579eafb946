#include "domain/assessment/aggregates.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "domain/domain_keys.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/time_util.h"
#include "google/protobuf/wire_format_lite.h"
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
std::string CadreVisits(const std::string& user_id) {
  return absl::StrCat("dom/as/cv/", user_id, std::string(1, '\0'));
}
std::string CadreVisit(const std::string& user_id, int64_t start_ms, uint64_t offset) {
  // The sign bit flipped: keys sort as the signed start times do.
  return absl::StrCat(CadreVisits(user_id), Hex16(static_cast<uint64_t>(start_ms) ^ (1ull << 63)),
                      Hex16(offset));
}
std::string VisitById(const std::string& user_id, const std::string& event_id,
                      const v1::SubjectRef& subject) {
  return absl::StrCat("dom/as/ve/", user_id, std::string(1, '\0'), event_id,
                      std::string(1, '\0'), sync::SubjectKey(subject));
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
// `meets`: MeetsAllSpans(cadre, options), the one input of the own part
// that depends on the counted visits.
void AddCadreOwn(const in::AsCadre& cadre, const Spans& meets, Computed& out) {
  std::set<std::string> prefixes;
  for (const in::AsLink& link : cadre.links()) {
    if (!link.cadre()) continue;
    for (const std::string& prefix : LevelPrefixes(link.area_code())) prefixes.insert(prefix);
  }
  if (prefixes.empty()) return;
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

void AddVisitTerm(const std::string& cadre_id, const in::AsVisit& visit,
                  const in::AsVisit* earlier, const std::map<std::string, in::AsPhotoGroup>& groups,
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
    flag.set_cadre_id(cadre_id);
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
  AddCadreOwn(cadre, MeetsAllSpans(cadre, options), out);
  const std::vector<const in::AsVisit*> live = LiveVisits(cadre);
  for (size_t i = 0; i < live.size(); ++i) {
    AddVisitTerm(cadre.user_id(), *live[i], i > 0 ? live[i - 1] : nullptr, groups, options, out);
  }
  return out;
}

absl::StatusOr<in::AsVisit> ParseVisit(const std::string& key, const std::string& bytes) {
  in::AsVisit visit;
  if (!visit.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("assessment record ", key, " does not parse"));
  }
  return visit;
}

// The location of a stored v1::Household, read off its wire bytes without
// parsing the rest (its fields map is most of the record, and a visit needs
// the location only).
absl::StatusOr<std::optional<v1::Location>> HouseholdLocation(const std::string& key,
                                                              const std::string& bytes) {
  using google::protobuf::internal::WireFormatLite;
  constexpr uint32_t kLocationTag = WireFormatLite::MakeTag(
      v1::Household::kLocationFieldNumber, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  std::optional<v1::Location> out;
  while (uint32_t tag = in.ReadTag()) {
    if (tag == kLocationTag) {
      v1::Location location;
      if (!WireFormatLite::ReadMessage(&in, &location)) break;
      if (out) {
        out->MergeFrom(location);  // Repeated occurrences merge, as a parser's would.
      } else {
        out = std::move(location);
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return absl::DataLossError(absl::StrCat("assessment record ", key, " does not parse"));
    }
  }
  if (!in.ConsumedEntireMessage()) {
    return absl::DataLossError(absl::StrCat("assessment record ", key, " does not parse"));
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

// Adds `diff` (deltas by scope, counter and day) to the counter buckets:
// each bucket touched is read, edited in place and written once (its
// entries stay sorted by counter, then day; a zero entry is dropped).
absl::Status AddToCounters(sync::ProjectionView& view,
                           const std::map<std::tuple<std::string, int, Day>, int64_t>& diff) {
  struct Add {
    std::string prefix;
    uint32_t bucket;
    int counter;
    Day day;
    int64_t delta;
  };
  std::vector<Add> adds;
  for (const auto& [key, delta] : diff) {
    if (delta == 0) continue;
    const auto& [scope, counter, day] = key;
    const uint32_t bucket = static_cast<uint32_t>(day) / kBucketDays;
    if (!scope.empty() && scope[0] == '=') {
      adds.push_back({scope.substr(1), bucket, counter, day, delta});
    } else {
      for (size_t level : kLevels) {
        if (scope.size() < level) break;
        adds.push_back({scope.substr(0, level), bucket, counter, day, delta});
      }
    }
  }
  std::sort(adds.begin(), adds.end(), [](const Add& a, const Add& b) {
    return std::tie(a.prefix, a.bucket, a.counter, a.day) <
           std::tie(b.prefix, b.bucket, b.counter, b.day);
  });
  // Scopes of one level (two villages of a county) add to the same entry.
  size_t kept = 0;
  for (size_t i = 0; i < adds.size(); ++i) {
    if (kept > 0 && adds[kept - 1].prefix == adds[i].prefix &&
        adds[kept - 1].bucket == adds[i].bucket && adds[kept - 1].counter == adds[i].counter &&
        adds[kept - 1].day == adds[i].day) {
      adds[kept - 1].delta += adds[i].delta;
    } else {
      if (kept != i) adds[kept] = std::move(adds[i]);
      ++kept;
    }
  }
  adds.resize(kept);
  for (size_t run = 0; run < adds.size();) {
    size_t end = run;
    while (end < adds.size() && adds[end].prefix == adds[run].prefix &&
           adds[end].bucket == adds[run].bucket) {
      ++end;
    }
    const std::string key =
        absl::StrCat(keys::LevelRoot("n", adds[run].prefix), keys::Hex8(adds[run].bucket));
    ASSIGN_OR_RETURN(std::optional<in::AsCounterBucket> stored,
                     Load<in::AsCounterBucket>(view, key));
    // Merge the stored entries (sorted) with the run's (sorted).
    in::AsCounterBucket out;
    const int stored_size = stored ? stored->deltas_size() : 0;
    int i = 0;
    size_t j = run;
    auto emit = [&](int counter, Day day, int64_t delta) {
      if (delta == 0) return;
      in::AsDelta* d = out.add_deltas();
      d->set_counter(counter);
      d->set_day(day);
      d->set_delta(delta);
    };
    while (i < stored_size || j < end) {
      const in::AsDelta* have = i < stored_size ? &stored->deltas(i) : nullptr;
      const Add* add = j < end ? &adds[j] : nullptr;
      if (add == nullptr ||
          (have != nullptr &&
           std::make_pair(have->counter(), static_cast<Day>(have->day())) <
               std::make_pair(add->counter, add->day))) {
        emit(have->counter(), have->day(), have->delta());
        ++i;
      } else if (have == nullptr || std::make_pair(add->counter, add->day) <
                                        std::make_pair(have->counter(),
                                                       static_cast<Day>(have->day()))) {
        emit(add->counter, add->day, add->delta);
        ++j;
      } else {
        emit(add->counter, add->day, have->delta() + add->delta);
        ++i;
        ++j;
      }
    }
    if (out.deltas_size() == 0) {
      if (stored) view.Delete(key);
    } else {
      Save(view, key, out);
    }
    run = end;
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

}  // namespace

absl::Status LoadVisits(sync::ProjectionView& view, in::AsCadre& cadre) {
  cadre.clear_visits();
  const std::string prefix = keys::CadreVisits(cadre.user_id());
  std::string at = prefix;
  while (true) {
    ASSIGN_OR_RETURN(auto entry, view.Nearest(prefix, at, /*forward=*/true));
    if (!entry) return absl::OkStatus();
    ASSIGN_OR_RETURN(*cadre.add_visits(), ParseVisit(entry->first, entry->second));
    at = std::move(entry->first);
  }
}

absl::Status LoadVisits(const sync::ProjectionReader& reader, in::AsCadre& cadre) {
  cadre.clear_visits();
  const std::string prefix = keys::CadreVisits(cadre.user_id());
  std::string after;
  while (true) {
    ASSIGN_OR_RETURN(auto batch, reader.Scan(prefix, after, 256));
    if (batch.empty()) return absl::OkStatus();
    for (const auto& [key, value] : batch) {
      ASSIGN_OR_RETURN(*cadre.add_visits(), ParseVisit(key, value));
    }
    after = batch.back().first;
  }
}

namespace {

// A change of the cadre's links, name, unit, rank or counted visits: only
// its own part depends on them.
absl::Status ApplyCadreOwnChange(sync::ProjectionView& view, const in::AsCadre& before,
                                 const in::AsCadre& after, const AssessmentOptions& options) {
  Computed old_part, new_part;
  AddCadreOwn(before, MeetsAllSpans(before, options), old_part);
  AddCadreOwn(after, MeetsAllSpans(after, options), new_part);
  return ApplyDifference(view, old_part, new_part);
}

// The prefix of a visit key: its cadre's visits ("dom/as/cv/<user_id>\0").
std::string_view VisitPrefixOf(std::string_view visit_key) {
  return visit_key.substr(0, visit_key.find('\0') + 1);
}

std::string CadreOfVisitKey(std::string_view visit_key) {
  const std::string_view prefix = VisitPrefixOf(visit_key);
  return std::string(prefix.substr(std::string_view("dom/as/cv/").size(),
                                   prefix.size() - std::string_view("dom/as/cv/").size() - 1));
}

// The cadre's live visit next to `visit_key` (before or after it), as the
// view holds them now.
absl::StatusOr<std::optional<std::pair<std::string, in::AsVisit>>> VisitNextTo(
    sync::ProjectionView& view, const std::string& visit_key, bool forward) {
  ASSIGN_OR_RETURN(auto entry, view.Nearest(VisitPrefixOf(visit_key), visit_key, forward));
  if (!entry) return std::optional<std::pair<std::string, in::AsVisit>>();
  ASSIGN_OR_RETURN(in::AsVisit visit, ParseVisit(entry->first, entry->second));
  return std::make_optional(std::make_pair(std::move(entry->first), std::move(visit)));
}

// Adds to `groups` the stored groups of the visit's photos it lacks.
absl::Status LoadGroups(sync::ProjectionView& view, const in::AsVisit& visit,
                        std::map<std::string, in::AsPhotoGroup>& groups) {
  for (const std::string& photo : visit.photos()) {
    if (groups.count(photo)) continue;
    ASSIGN_OR_RETURN(std::optional<in::AsPhotoGroup> group,
                     Load<in::AsPhotoGroup>(view, keys::PhotoGroup(photo)));
    groups[photo] = group ? *std::move(group) : in::AsPhotoGroup();
  }
  return absl::OkStatus();
}

// Adds the terms of the visits at `visit_keys` as the view holds them now
// (a key with no visit adds none): each a function of the visit, the live
// visit before it and its photos' groups, `changed` overriding the stored
// groups of the photos an event changes.
absl::Status AddTermsNow(sync::ProjectionView& view, const std::set<std::string>& visit_keys,
                         const std::map<std::string, in::AsPhotoGroup>& changed,
                         const AssessmentOptions& options, Computed& out) {
  std::map<std::string, in::AsPhotoGroup> groups = changed;
  for (const std::string& key : visit_keys) {
    ASSIGN_OR_RETURN(std::optional<in::AsVisit> visit, Load<in::AsVisit>(view, key));
    if (!visit) continue;
    ASSIGN_OR_RETURN(auto earlier, VisitNextTo(view, key, /*forward=*/false));
    RETURN_IF_ERROR(LoadGroups(view, *visit, groups));
    AddVisitTerm(CadreOfVisitKey(key), *visit, earlier ? &earlier->second : nullptr, groups,
                 options, out);
  }
  return absl::OkStatus();
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
    // Which visits count changes with the links: they are counted anew, the
    // one step that reads the cadre's visits whole (links change rarely).
    RETURN_IF_ERROR(LoadVisits(view, cadre));
    CountVisits(cadre, options.time_zone);
    cadre.clear_visits();
    Save(view, keys::Cadre(cadre.user_id()), cadre);
    RETURN_IF_ERROR(ApplyCadreOwnChange(view, before, cadre, options));
  }
  return absl::OkStatus();
}

// Removes (or adds) the visit's uses of its photos in `groups`.
void EditPhotoUses(std::map<std::string, in::AsPhotoGroup>& groups, const std::string& cadre_id,
                   const in::AsVisit& visit, bool add) {
  std::set<std::string> seen;
  for (const std::string& photo : visit.photos()) {
    if (!seen.insert(photo).second) continue;
    auto* uses = groups[photo].mutable_uses();
    uses->erase(std::remove_if(uses->begin(), uses->end(),
                               [&](const in::AsPhotoUse& use) {
                                 return use.device_id() == visit.device_id() &&
                                        use.event_id() == visit.event_id();
                               }),
                uses->end());
    if (!add) continue;
    in::AsPhotoUse* use = uses->Add();
    use->set_cadre_id(cadre_id);
    use->set_device_id(visit.device_id());
    use->set_event_id(visit.event_id());
    use->set_subject_kind(visit.subject_kind());
    use->set_subject_id(visit.subject_id());
    use->set_area_code(visit.area_code());
    use->set_start_ms(visit.start_ms());
    use->set_offset(visit.offset());
  }
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

// One visit recorded, corrected or withdrawn. Its own record moves from
// `before` to `after` (a correction may change its start, hence its key; a
// withdrawal deletes it). The terms that can change are those of: the visit
// at both keys; the visits that followed both keys before the change (the
// one after the old key loses it as predecessor, the one after the new key
// gains it; every other visit keeps its predecessor); and, when a photo group
// turns duplicate or back, every visit using that photo (DUPLICATE_PHOTO reads
// a group only through IsDuplicate). The own part changes with `counted`. So
// a visit reads its cadre, its neighbours and its photos' groups, never the
// cadre's history (docs/assessment.md "Cost at commit").
//
// When the record keeps one key (recorded, withdrawn, or corrected without
// moving its start: nearly every event), its neighbours P (before the key)
// and N (after it) are the same on both sides, so both sides' terms of the
// key and of N follow from the two visits read once: term(visit | P) and
// term(N | visit, or P without one). Two seeks; a moved start reads both
// sides through the view (AddTermsNow), four.
absl::Status ApplyVisit(const v1::Event& event, const sync::EventMeta& meta,
                        sync::ProjectionView& view, const AssessmentOptions& options) {
  const std::string& cadre_id = meta.author.actor;
  std::optional<in::AsVisit> before, after;
  // dom/as/ve/: the key of the first visit in log order with the event's id,
  // subject and author (the engine's reference rule), for its corrections.
  std::string by_id_key;
  if (event.has_visit_recorded()) {
    in::AsVisit& visit = after.emplace();
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
      const std::string key = domain::keys::Household(sync::SubjectKey(event.subject()));
      ASSIGN_OR_RETURN(std::optional<std::string> household, view.Get(key));
      if (household) {
        ASSIGN_OR_RETURN(std::optional<v1::Location> location, HouseholdLocation(key, *household));
        if (location) {
          visit.set_has_target_location(true);
          visit.set_target_lat(location->lat());
          visit.set_target_lng(location->lng());
        }
      }
    }
    by_id_key = keys::VisitById(cadre_id, event.event_id(), event.subject());
  } else {
    const v1::VisitCorrected& body = event.visit_corrected();
    by_id_key = keys::VisitById(cadre_id, body.original_event_id(), event.subject());
    ASSIGN_OR_RETURN(std::optional<std::string> at, view.Get(by_id_key));
    if (!at) return absl::OkStatus();
    ASSIGN_OR_RETURN(before, Load<in::AsVisit>(view, *at));
    if (!before) return absl::OkStatus();  // Withdrawn.
    if (!body.withdrawn()) {
      after = before;
      SetTimesAndPhotos(*after, body.corrected());
      SetFix(*after, event);
    }
  }
  const std::string before_key =
      before ? keys::CadreVisit(cadre_id, before->start_ms(), before->offset()) : "";
  const std::string after_key =
      after ? keys::CadreVisit(cadre_id, after->start_ms(), after->offset()) : "";

  // The photo groups the event changes, before and after it.
  std::map<std::string, in::AsPhotoGroup> groups_before;
  for (const std::optional<in::AsVisit>* visit : {&before, &after}) {
    if (!*visit) continue;
    for (const std::string& photo : (*visit)->photos()) {
      if (groups_before.count(photo)) continue;
      ASSIGN_OR_RETURN(std::optional<in::AsPhotoGroup> group,
                       Load<in::AsPhotoGroup>(view, keys::PhotoGroup(photo)));
      groups_before[photo] = group ? *std::move(group) : in::AsPhotoGroup();
    }
  }
  std::map<std::string, in::AsPhotoGroup> groups_after = groups_before;
  if (before) EditPhotoUses(groups_after, cadre_id, *before, /*add=*/false);
  if (after) EditPhotoUses(groups_after, cadre_id, *after, /*add=*/true);

  // The one key and its neighbours (see above), else `affected` holds both
  // keys and the visits after them. `affected`: the terms read through the
  // view on both sides.
  const bool one_key = before_key.empty() || after_key.empty() || before_key == after_key;
  const std::string& key = after_key.empty() ? before_key : after_key;
  std::optional<std::pair<std::string, in::AsVisit>> prev, next;
  std::set<std::string> affected;
  if (one_key) {
    ASSIGN_OR_RETURN(prev, VisitNextTo(view, key, /*forward=*/false));
    ASSIGN_OR_RETURN(next, VisitNextTo(view, key, /*forward=*/true));
  } else {
    for (const std::string* at : {&before_key, &after_key}) {
      affected.insert(*at);
      ASSIGN_OR_RETURN(auto after_it, VisitNextTo(view, *at, /*forward=*/true));
      if (after_it) affected.insert(after_it->first);
    }
  }
  for (const auto& [photo, group] : groups_before) {
    const in::AsPhotoGroup& now = groups_after[photo];
    if (IsDuplicate(group) == IsDuplicate(now)) continue;
    for (const in::AsPhotoGroup* g : {&group, &now}) {
      for (const in::AsPhotoUse& use : g->uses()) {
        std::string use_key = keys::CadreVisit(use.cadre_id(), use.start_ms(), use.offset());
        if (one_key && (use_key == key || (next && use_key == next->first))) continue;
        affected.insert(std::move(use_key));
      }
    }
  }
  // The terms of the key and of N on one side: `mine` is the event's visit
  // on that side (none: absent there), `groups` that side's changed groups.
  auto add_neighbourhood = [&](const std::optional<in::AsVisit>& mine,
                               std::map<std::string, in::AsPhotoGroup> groups,
                               Computed& out) -> absl::Status {
    const in::AsVisit* earlier = prev ? &prev->second : nullptr;
    if (mine) {
      RETURN_IF_ERROR(LoadGroups(view, *mine, groups));
      AddVisitTerm(cadre_id, *mine, earlier, groups, options, out);
    }
    if (next) {
      RETURN_IF_ERROR(LoadGroups(view, next->second, groups));
      AddVisitTerm(cadre_id, next->second, mine ? &*mine : earlier, groups, options, out);
    }
    return absl::OkStatus();
  };

  ASSIGN_OR_RETURN(in::AsCadre cadre, LoadOrNewCadre(view, cadre_id));
  in::AsCadre cadre_after = cadre;
  bool counted_changed = false;
  if (before && VisitCounts(cadre, *before, options.time_zone)) {
    AdjustCounted(cadre_after, VisitDays(*before, options.time_zone), -1);
    counted_changed = true;
  }
  if (after && VisitCounts(cadre, *after, options.time_zone)) {
    AdjustCounted(cadre_after, VisitDays(*after, options.time_zone), +1);
    counted_changed = true;
  }
  Computed old_part, new_part;
  if (counted_changed) {
    // The two records differ in their counted visits only, which the own
    // part reads through MeetsAllSpans: the same spans, the same part.
    Spans meets_before = MeetsAllSpans(cadre, options);
    Spans meets_after = MeetsAllSpans(cadre_after, options);
    if (meets_before != meets_after) {
      AddCadreOwn(cadre, meets_before, old_part);
      AddCadreOwn(cadre_after, meets_after, new_part);
    }
  }
  if (one_key) RETURN_IF_ERROR(add_neighbourhood(before, groups_before, old_part));
  RETURN_IF_ERROR(AddTermsNow(view, affected, groups_before, options, old_part));

  if (before) view.Delete(before_key);
  if (after) Save(view, after_key, *after);
  if (event.has_visit_recorded()) {
    ASSIGN_OR_RETURN(std::optional<std::string> first, view.Get(by_id_key));
    if (!first) view.Put(by_id_key, after_key);
  } else if (after && after_key != before_key) {
    view.Put(by_id_key, after_key);
  }  // Withdrawn: the entry stays, naming no visit, so later corrections find none.
  for (const auto& [photo, group] : groups_after) {
    if (group.uses_size() == 0) {
      view.Delete(keys::PhotoGroup(photo));
    } else {
      Save(view, keys::PhotoGroup(photo), group);
    }
  }
  Save(view, keys::Cadre(cadre_id), cadre_after);
  if (one_key) RETURN_IF_ERROR(add_neighbourhood(after, groups_after, new_part));
  RETURN_IF_ERROR(AddTermsNow(view, affected, groups_after, options, new_part));
  return ApplyDifference(view, old_part, new_part);
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
  in::AsCadre counted = cadre;
  CountVisits(counted, options.time_zone);
  return ComputeCadre(counted, groups, options).ToRecord();
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
