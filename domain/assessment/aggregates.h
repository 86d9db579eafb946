// The assessment aggregates, kept at commit in the same WriteBatch as the
// events that change them (ShuanglianPolicy::Merge calls ApplyAtCommit after a
// body's own merge), and read by the reports (report.h) without touching the
// log. Key layout, all under "dom/as/" (L2 = the prefix's length, 2 digits;
// <P> a level prefix of an area code: 2, 4, 6, 9 or 12 digits):
//   dom/as/s/<subject_key>             AsSubject: a household or village (needs, links, plans)
//   dom/as/c/<user_id>                 AsCadre: a cadre's links and counted visits
//   dom/as/cv/<user_id>\0<start><offset>  AsVisit: one live visit (keys::CadreVisit)
//   dom/as/ve/<user_id>\0<event id>\0<subject_key>  the key of that visit, for corrections
//   dom/as/ph/<photo sha256 hex>       AsPhotoGroup: the live visits using a photo
//   dom/as/sc/<subject_key>            AsContribution the subject wrote
//   dom/as/n/<L2>/<P>/<bucket hex8>    AsCounterBucket: counter deltas by day (bucket = day/8)
//   dom/as/ci/<L2>/<P>/<unit>\0<name>\0<user_id>           ""  cadres linked under P
//   dom/as/g/<L2>/<P>/<from hex8>/<subject_key>            AsGap  coverage gap runs
//   dom/as/mp/<L2>/<P>/<plan kind>/<subject id>\0<unit>    subject key: plans ever required
//   dom/as/f/<L2>/<P>/<year>/<start ms hex16>/<offset hex16>/<kind>/<photo hex>
//                                                          v1.EvidenceFlag
//   dom/as/fb/<L2>/<P>/<county>/<kind 2d>/<offset hex16>   v1.FeedbackEntry
//   dom/as/in/<L2>/<P>/<subject_key>/<offset hex16>        v1.InspectionEntry
//   dom/as/glu/<county>                AsSubject: the county's GROUP_LEADER_UNIT links
// A counter's value on day D is the sum of its deltas on days <= D: every
// quantity of the summary is a function of the as-of day, so a report of any
// day reads the same records. The counters and indexes always equal the sum
// (union) of the current contributions of every subject and cadre
// (tests/domain/assessment_property_test.cc); a change writes the difference
// between one contribution before and after it:
//   - a subject stores what it contributed (dom/as/sc/), re-read at its next
//     change (subjects change rarely: links, statuses, plans);
//   - a cadre stores none: its contribution is split into the cadre's own
//     part (links, rank, counted visits: kCadres, kCadresMeetingAll, "ci"; a
//     function of the small AsCadre record) and one term per live visit
//     (kVisits, kFlaggedVisits, "f": a function of the visit, the live visit
//     before it and its photos' groups). A visit recomputes the own part and
//     the terms of the visits whose record or predecessor changed (found with
//     ProjectionView::Nearest among the cadre's visit records), never the
//     cadre's history (docs/assessment.md "Cost at commit").
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "domain/assessment/rules.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/report_service.pb.h"
#include "sync/merge_policy.h"

namespace fieldsync::domain::assessment {

// Counters of the summary (AssessmentSummary fields). Most are running
// sums: the value on day D is the sum of the deltas on days <= D. kVisits and
// kFlaggedVisits are year counters: their value on D is the sum of the deltas
// on days of D's year up to D, so a visit writes one delta (its start day) and
// never a -1 on the next 1 January: half the bucket writes of a visit. Ids 6
// and 7 were running-sum visit counters of an earlier build (a -1 on the next
// 1 January); reports ignore them.
enum Counter : int {
  kCadres = 0,
  kCadresMeetingAll = 1,
  kHouseholdsRequiringLink = 2,
  kHouseholdsCovered = 3,
  kPoorVillages = 4,
  kVillagesCovered = 5,
  kPlansRequired = 8,
  kPlansPresent = 9,
  kVisits = 10,
  kFlaggedVisits = 11,
  kCounterCount = 12,
};
// True for the year counters (kVisits, kFlaggedVisits).
inline bool IsYearCounter(int counter) { return counter == kVisits || counter == kFlaggedVisits; }

// Days per counter bucket: a commit rewrites one bucket per level and
// counter day, so small buckets keep its writes small (a province bucket
// holds up to 8 days x 10 counters); a report reads ~46 a year.
inline constexpr uint32_t kBucketDays = 8;

// The level prefixes the aggregates are kept for.
inline constexpr size_t kLevels[] = {2, 4, 6, 9, 12};
bool IsLevel(size_t length);
// The longest level not longer than `length` (2 for shorter ones).
size_t LevelAtOrAbove(size_t length);

namespace keys {
std::string Subject(const std::string& subject_key);
std::string Cadre(const std::string& user_id);
std::string PhotoGroup(const std::string& sha256);
std::string SubjectContribution(const std::string& subject_key);
// "dom/as/<kind>/<L2>/<prefix>/" for a level prefix.
std::string LevelRoot(const std::string& kind, const std::string& level_prefix);
// The scan prefix of index `kind` for any prefix: the level at or above it.
std::string ScanRoot(const std::string& kind, const std::string& prefix);
// The group-leader unit links of a county (an AsSubject holding only links).
std::string GroupLeaders(const std::string& county);
// "dom/as/cv/<user_id>\0": the prefix of the cadre's visit records.
std::string CadreVisits(const std::string& user_id);
// A live visit: CadreVisits(user_id) + hex16(start ms, sign bit flipped) +
// hex16(offset), so a cadre's visits sort in (start, offset) order.
std::string CadreVisit(const std::string& user_id, int64_t start_ms, uint64_t offset);
// "dom/as/ve/<user_id>\0<event_id>\0<subject key>": the key of the visit
// recorded with that id (empty of a visit once it is withdrawn).
std::string VisitById(const std::string& user_id, const std::string& event_id,
                      const v1::SubjectRef& subject);
std::string Hex8(uint32_t value);
std::string Hex16(uint64_t value);
}  // namespace keys

// Folds an accepted event into the aggregates. `event` has passed the
// domain's merge (which wrote the projections this reads through `view`).
absl::Status ApplyAtCommit(const v1::Event& event, const sync::EventMeta& meta,
                           sync::ProjectionView& view, const AssessmentOptions& options);

// Fills cadre.visits with the cadre's live visit records, in (start, offset)
// order: at commit (a recount) and in a report row.
absl::Status LoadVisits(sync::ProjectionView& view, in::AsCadre& cadre);
absl::Status LoadVisits(const sync::ProjectionReader& reader, in::AsCadre& cadre);

// The contributions as computed now from the stored records (for the
// property test's from-scratch recomputation).
in::AsContribution SubjectContributionOf(const in::AsSubject& subject,
                                         const AssessmentOptions& options);
// `cadre` with its visits loaded (LoadVisits); its counted visits are
// recounted from them, not taken from the record.
in::AsContribution CadreContributionOf(const in::AsCadre& cadre,
                                       const std::map<std::string, in::AsPhotoGroup>& groups,
                                       const AssessmentOptions& options);

// True for household statuses that need an active household link.
bool StatusNeedsLink(v1::HouseholdStatus status);

}  // namespace fieldsync::domain::assessment
