// Test support of the assessment aggregates' tests (tests/domain/*assessment*):
// random worlds folded through ShuanglianPolicy::Merge over an in-memory
// projection space, and the checks of their aggregates against a
// from-scratch recomputation. Included by one test file per binary, hence
// the unnamed namespace.
#pragma once

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "domain/assessment/aggregates.h"
#include "domain/assessment/report.h"
#include "domain/shuanglian_policy.h"
#include "gtest/gtest.h"
#include "storage/write_overlay.h"
#include "sync/event_codec.h"

namespace fieldsync::domain::assessment {
namespace {

class MemoryStore final : public sync::ProjectionView, public sync::ProjectionReader {
 public:
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    auto it = data_.find(std::string(key));
    if (it == data_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) const override {
    auto it = data_.find(std::string(key));
    if (it == data_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Nearest(
      std::string_view prefix, std::string_view key, bool forward) override {
    return storage::NearestThrough(pending_, prefix, key, forward, [&](std::string_view cursor) {
      return StoredNearest(prefix, cursor, forward);
    });
  }
  void Put(std::string_view key, std::string_view value) override {
    pending_[std::string(key)] = std::string(value);
  }
  void Delete(std::string_view key) override { pending_[std::string(key)] = std::nullopt; }
  // Nearest among the stored entries only.
  storage::NearestEntry StoredNearest(std::string_view prefix, std::string_view cursor,
                                      bool forward) const {
    auto it = data_.upper_bound(std::string(cursor));
    if (!forward) {
      it = data_.lower_bound(std::string(cursor));
      if (it == data_.begin()) return std::nullopt;
      --it;
    }
    if (it == data_.end() || !std::string_view(it->first).starts_with(prefix)) return std::nullopt;
    return *it;
  }
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Scan(
      std::string_view prefix, std::string_view start_after, size_t limit) const override {
    std::vector<std::pair<std::string, std::string>> out;
    auto it = start_after.empty() ? data_.lower_bound(std::string(prefix))
                                  : data_.upper_bound(std::string(start_after));
    for (; it != data_.end() && out.size() < limit; ++it) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      out.push_back(*it);
    }
    return out;
  }
  // Reads see a Merge's own writes at once (as the engine's BufferedView).
  void Commit(bool keep) {
    if (keep) {
      for (auto& [k, v] : pending_) {
        if (v) {
          data_[k] = *v;
        } else {
          data_.erase(k);
        }
      }
    }
    pending_.clear();
  }
  const std::map<std::string, std::string>& data() const { return data_; }
  // Value bytes the merges read through View (Get and Nearest).
  uint64_t read_bytes = 0;

 private:
  // Get during a merge must see pending writes.
  std::map<std::string, std::string> data_;
  storage::WriteOverlay pending_;
  friend class View;
};

// A view over MemoryStore that reads its pending writes first.
class View final : public sync::ProjectionView {
 public:
  explicit View(MemoryStore& store) : store_(store) {}
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
    auto it = store_.pending_.find(std::string(key));
    absl::StatusOr<std::optional<std::string>> out =
        it != store_.pending_.end() ? it->second : static_cast<const MemoryStore&>(store_).Get(key);
    if (out.ok() && out->has_value()) store_.read_bytes += (*out)->size();
    return out;
  }
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Nearest(
      std::string_view prefix, std::string_view key, bool forward) override {
    auto out = store_.Nearest(prefix, key, forward);
    if (out.ok() && out->has_value()) store_.read_bytes += (*out)->second.size();
    return out;
  }
  void Put(std::string_view key, std::string_view value) override { store_.Put(key, value); }
  void Delete(std::string_view key) override { store_.Delete(key); }

 private:
  MemoryStore& store_;
};

const absl::TimeZone kTz = absl::FixedTimeZone(8 * 3600);
absl::Time At(int month, int day, int hour, int minute = 0) {
  return absl::FromCivil(absl::CivilSecond(2024, month, day, hour, minute, 0), kTz);
}
google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToUnixSeconds(t));
  return out;
}
v1::Date DateOf(absl::Time t) {
  absl::CivilDay d = absl::ToCivilDay(t, kTz);
  v1::Date out;
  out.set_year(static_cast<int>(d.year()));
  out.set_month(d.month());
  out.set_day(d.day());
  return out;
}

struct World {
  ShuanglianPolicy policy;
  MemoryStore store;
  uint64_t offset = 0;
  std::vector<v1::Event> log;  // Accepted events, in order.
  std::vector<sync::EventMeta> metas;

  bool Apply(v1::Event event, const std::string& actor, v1::Role role, absl::Time device_time,
             absl::Duration push_offset = absl::ZeroDuration()) {
    *event.mutable_device_time() = Ts(device_time);
    if (event.device_id().empty()) event.set_device_id("dev-" + actor);
    sync::EventMeta meta;
    meta.author.actor = actor;
    meta.author.role = role;
    meta.author.device_id = event.device_id();
    meta.offset = ++offset;
    meta.adopted_hlc = offset;
    meta.received_at = device_time + absl::Hours(1);
    meta.push_clock_offset = push_offset;
    View view(store);
    absl::StatusOr<sync::MergeResult> result = policy.Merge(event, meta, view);
    EXPECT_TRUE(result.ok()) << result.status();
    const bool ok = result.ok() && !result->rejection.has_value();
    store.Commit(ok);
    if (ok) {
      log.push_back(event);
      metas.push_back(meta);
    } else {
      --offset;
    }
    return ok;
  }
};

v1::SubjectRef Ref(v1::SubjectKind kind, const std::string& id) {
  v1::SubjectRef out;
  out.set_kind(kind);
  out.set_id(id);
  return out;
}

[[maybe_unused]] void BuildRandomWorld(World& w, std::mt19937& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<std::string> villages = {"620102001001", "620102001002", "620103001001"};
  v1::Event areas;
  *areas.mutable_subject() = Ref(v1::SUBJECT_KIND_AREA, "620000000000");
  areas.set_area_code("620000000000");
  for (const std::string& v : villages) {
    v1::Area* a = areas.mutable_area_imported()->add_areas();
    a->set_code(v);
    a->set_level(v1::AREA_LEVEL_VILLAGE);
    a->set_name("村" + v.substr(9));
    a->set_designated_poor(pick(2) == 0);
  }
  ASSERT_TRUE(w.Apply(areas, "admin", v1::ROLE_ADMIN, At(1, 1 + pick(60), 9)));
  for (const char* unit : {"U1", "U2"}) {
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_UNIT, unit);
    e.mutable_unit_upserted()->mutable_unit()->set_id(unit);
    e.mutable_unit_upserted()->mutable_unit()->set_area_code("620102000000");
    ASSERT_TRUE(w.Apply(e, "admin", v1::ROLE_ADMIN, At(1, 1, 8)));
  }
  const int cadres = 4;
  for (int c = 0; c < cadres; ++c) {
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_USER, absl::StrCat("c", c));
    v1::User* u = e.mutable_user_upserted()->mutable_user();
    u->set_id(absl::StrCat("c", c));
    u->set_name(absl::StrCat("名", pick(3)));
    u->set_role(v1::ROLE_CADRE);
    u->set_rank(static_cast<v1::CadreRank>(1 + pick(4)));
    u->set_unit_id(pick(2) ? "U1" : "U2");
    ASSERT_TRUE(w.Apply(e, "admin", v1::ROLE_ADMIN, At(1, 1, 8)));
  }
  const int households = 8;
  std::vector<std::string> hh_village;
  for (int h = 0; h < households; ++h) {
    const std::string id = absl::StrCat("11111111-1111-4111-8111-0000000000", 10 + h);
    const std::string& village = villages[pick(3)];
    hh_village.push_back(village);
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, id);
    e.set_area_code(village);
    e.set_event_id(absl::StrCat("reg", h));
    v1::HouseholdRegistered* r = e.mutable_household_registered();
    r->set_household_number(absl::StrCat("N", h));
    r->set_head_name(absl::StrCat("戶", h));
    r->set_head_id_number("110101199001011237");
    r->set_initial_status(pick(4) == 0 ? v1::HOUSEHOLD_STATUS_EXITED
                                       : v1::HOUSEHOLD_STATUS_IDENTIFIED);
    if (pick(2)) {
      r->mutable_location()->set_lat(36.0 + 0.01 * pick(3));
      r->mutable_location()->set_lng(103.8);
    }
    ASSERT_TRUE(w.Apply(e, "town", v1::ROLE_TOWNSHIP_STAFF, At(1 + pick(3), 1 + pick(28), 10)));
  }
  auto hh = [&](int h) { return absl::StrCat("11111111-1111-4111-8111-0000000000", 10 + h); };
  struct Visit {
    std::string event_id, cadre, household, village;
    absl::Time start;  // As the last accepted correction left it.
  };
  std::vector<Visit> visits;
  std::vector<std::pair<std::string, v1::Date>> open_links;
  int links = 0;
  for (int step = 0; step < 80; ++step) {
    const int what = pick(10);
    const std::string cadre = absl::StrCat("c", pick(cadres));
    const int h = pick(households);
    const absl::Time when = At(1 + pick(11), 1 + pick(28), 6 + pick(18), pick(60));
    if (what < 2) {
      v1::Event e;
      *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, hh(h));
      e.set_area_code(hh_village[h]);
      v1::LinkStarted* l = e.mutable_link_started();
      l->set_link_id(absl::StrCat("L", ++links));
      l->set_cadre_id(cadre);
      l->set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
      *l->mutable_valid_from() = DateOf(when);
      if (w.Apply(e, "county", v1::ROLE_COUNTY_STAFF, At(1, 1, 9))) {
        open_links.emplace_back(l->link_id(), l->valid_from());
      }
    } else if (what == 2) {
      const std::string& village = villages[pick(3)];
      v1::Event e;
      *e.mutable_subject() = Ref(v1::SUBJECT_KIND_VILLAGE, village);
      e.set_area_code(village);
      v1::LinkStarted* l = e.mutable_link_started();
      l->set_link_id(absl::StrCat("L", ++links));
      l->set_unit_id(pick(2) ? "U1" : "U2");
      l->set_role(v1::LINK_ROLE_VILLAGE_UNIT);
      *l->mutable_valid_from() = DateOf(when);
      if (w.Apply(e, "county", v1::ROLE_COUNTY_STAFF, At(1, 1, 9))) {
        open_links.emplace_back(l->link_id(), l->valid_from());
      }
    } else if (what == 3 && !open_links.empty()) {
      const size_t i = rng() % open_links.size();
      const std::string link_id = open_links[i].first;
      const std::string& target_key = w.store.data().at(absl::StrCat("dom/link/", link_id));
      auto ref = sync::ParseSubjectKey(target_key);
      ASSERT_TRUE(ref.has_value());
      v1::Event e;
      *e.mutable_subject() = *ref;
      e.set_area_code(ref->kind() == v1::SUBJECT_KIND_HOUSEHOLD
                          ? w.store.data().at(absl::StrCat("dom/hh/id/", ref->id()))
                          : ref->id());
      v1::LinkEnded* l = e.mutable_link_ended();
      l->set_link_id(link_id);
      l->set_reason(v1::LINK_END_REASON_ENTERED_IN_ERROR);
      absl::CivilDay from(open_links[i].second.year(), open_links[i].second.month(),
                          open_links[i].second.day());
      absl::CivilDay to = from + pick(120);
      v1::Date d;
      d.set_year(static_cast<int>(to.year()));
      d.set_month(to.month());
      d.set_day(to.day());
      *l->mutable_valid_to() = d;
      if (w.Apply(e, "county", v1::ROLE_COUNTY_STAFF, At(1, 1, 9))) {
        open_links.erase(open_links.begin() + static_cast<long>(i));
      }
    } else if (what < 8) {
      v1::Event e;
      e.set_event_id(absl::StrCat("v", step));
      *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, hh(h));
      e.set_area_code(hh_village[h]);
      v1::VisitRecorded* v = e.mutable_visit_recorded();
      *v->mutable_start_time() = Ts(when);
      *v->mutable_end_time() = Ts(when + absl::Minutes(30 + 60 * pick(6)));
      v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
      if (pick(3) == 0) v->add_photo_sha256(std::string(32, static_cast<char>('a' + pick(3))));
      if (pick(4) != 0) {
        e.mutable_location()->set_lat(36.0 + 0.5 * pick(3));
        e.mutable_location()->set_lng(103.8);
      }
      const absl::Duration skew = absl::Minutes(pick(3) == 0 ? 15 : 1);
      if (w.Apply(e, cadre, v1::ROLE_CADRE, when + absl::Hours(2), skew)) {
        visits.push_back({e.event_id(), cadre, hh(h), hh_village[h], when});
      }
    } else if (what == 8 && !visits.empty()) {
      Visit& original = visits[rng() % visits.size()];
      v1::Event e;
      e.set_event_id(absl::StrCat("x", step));
      *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, original.household);
      e.set_area_code(original.village);
      v1::VisitCorrected* c = e.mutable_visit_corrected();
      c->set_original_event_id(original.event_id);
      c->set_reason("改");
      if (pick(2)) {
        c->set_withdrawn(true);
      } else {
        // Half the corrections move the visit (a new start, a new record
        // key); the others keep its start and change its end, fix or photo.
        const absl::Time start = pick(2) ? when : original.start;
        *c->mutable_corrected()->mutable_start_time() = Ts(start);
        *c->mutable_corrected()->mutable_end_time() = Ts(start + absl::Hours(1 + pick(5)));
        if (pick(2)) {
          e.mutable_location()->set_lat(36.0 + 0.5 * pick(3));
          e.mutable_location()->set_lng(103.8);
        }
        // Sometimes the photo too: its uses move from one group to another
        // in one event (a group may turn duplicate or back).
        if (pick(3) == 0) {
          c->mutable_corrected()->add_photo_sha256(std::string(32, static_cast<char>('a' + pick(3))));
        }
      }
      const absl::Time corrected_start =
          c->has_corrected() ? absl::FromUnixSeconds(c->corrected().start_time().seconds())
                             : original.start;
      if (w.Apply(e, original.cadre, v1::ROLE_CADRE, when)) original.start = corrected_start;
    } else {
      v1::Event e;
      *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, hh(h));
      e.set_area_code(hh_village[h]);
      v1::PlanRevised* p = e.mutable_plan_revised();
      p->set_plan_id(absl::StrCat(hh(h), "/2024"));
      p->set_kind(v1::PLAN_KIND_HOUSEHOLD_EXIT);
      p->set_year(2024);
      auto plan = w.store.data().find(absl::StrCat("dom/st/household/", hh(h), "/p/", hh(h), "/2024"));
      if (plan != w.store.data().end()) {
        v1::Plan current;
        current.ParseFromString(plan->second);
        p->set_base_version(current.version());
      }
      for (int i = pick(3); i > 0; --i) {
        v1::PlanItem* item = p->add_items();
        item->set_item_id(absl::StrCat("i", i));
        item->set_category(static_cast<v1::MeasureCategory>(1));
        item->set_content("x");
        item->set_year(2024);
      }
      w.Apply(e, cadre, v1::ROLE_CADRE, when);
    }
  }
}

// (1) Stored contributions, counters and indexes against the final records.
[[maybe_unused]] void CheckAgainstRecords(const std::map<std::string, std::string>& data,
                         const AssessmentOptions& options) {
  std::map<std::string, in::AsPhotoGroup> groups;
  for (auto it = data.lower_bound("dom/as/ph/"); it != data.end() && it->first.rfind("dom/as/ph/", 0) == 0; ++it) {
    in::AsPhotoGroup g;
    ASSERT_TRUE(g.ParseFromString(it->second));
    std::string hex = it->first.substr(10);
    std::string raw;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      raw.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    groups[raw] = g;
  }
  std::vector<in::AsContribution> recomputed;
  auto expect_same = [&](const std::string& key, const in::AsContribution& fresh) {
    auto it = data.find(key);
    std::string stored = it == data.end() ? "" : it->second;
    in::AsContribution stored_c;
    ASSERT_TRUE(stored_c.ParseFromString(stored));
    EXPECT_EQ(stored_c.DebugString(), fresh.DebugString()) << key;
    recomputed.push_back(fresh);
  };
  for (auto it = data.lower_bound("dom/as/s/"); it != data.end() && it->first.rfind("dom/as/s/", 0) == 0; ++it) {
    in::AsSubject s;
    ASSERT_TRUE(s.ParseFromString(it->second));
    expect_same("dom/as/sc/" + it->first.substr(9), SubjectContributionOf(s, options));
  }
  // Cadres keep no contribution record (aggregates.h): theirs is recomputed
  // from the final records and only summed.
  for (auto it = data.lower_bound("dom/as/c/"); it != data.end() && it->first.rfind("dom/as/c/", 0) == 0; ++it) {
    in::AsCadre c;
    ASSERT_TRUE(c.ParseFromString(it->second));
    EXPECT_EQ(c.visits_size(), 0) << "visits stored in the cadre record " << it->first;
    // Its visit records, in key order (= (start, offset) order).
    const std::string prefix = keys::CadreVisits(c.user_id());
    for (auto v = data.lower_bound(prefix); v != data.end() && v->first.rfind(prefix, 0) == 0; ++v) {
      ASSERT_TRUE(c.add_visits()->ParseFromString(v->second));
      EXPECT_EQ(v->first, keys::CadreVisit(c.user_id(), c.visits().rbegin()->start_ms(),
                                           c.visits().rbegin()->offset()));
    }
    // The counted visits the commit maintains equal a recount under the final links.
    in::AsCadre recounted = c;
    CountVisits(recounted, options.time_zone);
    EXPECT_EQ(c.DebugString(), recounted.DebugString()) << it->first;
    recomputed.push_back(CadreContributionOf(c, groups, options));
  }
  {
    auto cc = data.lower_bound("dom/as/cc/");
    EXPECT_FALSE(cc != data.end() && cc->first.rfind("dom/as/cc/", 0) == 0)
        << "a cadre contribution record: " << cc->first;
  }
  // Counters = sum of the contributions; indexes = union of their keys.
  std::map<std::tuple<std::string, int, int>, int64_t> expected, stored;
  std::set<std::string> index_keys;
  for (const in::AsContribution& c : recomputed) {
    for (const in::AsDelta& d : c.deltas()) {
      std::vector<std::string> prefixes;
      if (d.scope()[0] == '=') {
        prefixes.push_back(d.scope().substr(1));
      } else {
        for (size_t l : kLevels) prefixes.push_back(d.scope().substr(0, l));
      }
      for (const auto& p : prefixes) expected[{p, d.counter(), d.day()}] += d.delta();
    }
    for (const std::string& k : c.index_keys()) index_keys.insert(k);
  }
  for (auto it = data.lower_bound("dom/as/n/"); it != data.end() && it->first.rfind("dom/as/n/", 0) == 0; ++it) {
    const std::string prefix = it->first.substr(12, it->first.size() - 12 - 9);
    in::AsCounterBucket b;
    ASSERT_TRUE(b.ParseFromString(it->second));
    for (const in::AsDelta& d : b.deltas()) stored[{prefix, d.counter(), d.day()}] += d.delta();
  }
  for (auto it = expected.begin(); it != expected.end();) {
    it = it->second == 0 ? expected.erase(it) : std::next(it);
  }
  EXPECT_EQ(stored, expected);
  for (const char* kind : {"dom/as/ci/", "dom/as/g/", "dom/as/mp/", "dom/as/f/"}) {
    for (auto it = data.lower_bound(kind); it != data.end() && it->first.rfind(kind, 0) == 0; ++it) {
      EXPECT_TRUE(index_keys.count(it->first)) << "stray index entry " << it->first;
    }
  }
  for (const std::string& k : index_keys) EXPECT_TRUE(data.count(k)) << "missing index entry " << k;
}

// (2) The summary against figures counted from the event list alone.
[[maybe_unused]] void CheckAgainstLog(const World& w, const AssessmentOptions& options, Day as_of) {
  const Day jan1 = FirstDay(YearOf(as_of));
  struct VisitState {
    int64_t start = 0;
    bool withdrawn = false;
    std::string household, cadre;
  };
  std::map<std::string, VisitState> visits;
  std::map<std::string, std::pair<Day, bool>> households;  // id -> (day, needs)
  struct LinkState {
    bool cadre;
    std::string holder, target;
    Day from, to = kForever;
  };
  std::map<std::string, LinkState> links;
  std::map<std::string, std::pair<Day, bool>> villages;
  for (size_t i = 0; i < w.log.size(); ++i) {
    const v1::Event& e = w.log[i];
    const Day day = DayOf(absl::FromUnixSeconds(e.device_time().seconds()), options.time_zone);
    if (e.has_visit_recorded()) {
      visits[e.event_id()] = {e.visit_recorded().start_time().seconds(), false, e.subject().id(),
                              w.metas[i].author.actor};
    } else if (e.has_visit_corrected()) {
      VisitState& v = visits.at(e.visit_corrected().original_event_id());
      if (v.withdrawn) continue;
      if (e.visit_corrected().withdrawn()) {
        v.withdrawn = true;
      } else {
        v.start = e.visit_corrected().corrected().start_time().seconds();
      }
    } else if (e.has_household_registered()) {
      households[e.subject().id()] = {day, StatusNeedsLink(e.household_registered().initial_status())};
    } else if (e.has_link_started()) {
      const auto& l = e.link_started();
      links[l.link_id()] = {l.has_cadre_id(), l.has_cadre_id() ? l.cadre_id() : l.unit_id(),
                            e.subject().id(), DayOfDate(l.valid_from())};
    } else if (e.has_link_ended()) {
      links.at(e.link_ended().link_id()).to = DayOfDate(e.link_ended().valid_to());
    } else if (e.has_area_imported()) {
      for (const auto& a : e.area_imported().areas()) {
        if (a.designated_poor()) villages[a.code()] = {day, true};
      }
    }
  }
  uint32_t n_visits = 0, requiring = 0, covered = 0, poor = 0, vcovered = 0;
  for (const auto& [id, v] : visits) {
    const Day d = DayOf(absl::FromUnixSeconds(v.start), options.time_zone);
    if (!v.withdrawn && d >= jan1 && d <= as_of) ++n_visits;
  }
  auto linked_on = [&](const std::string& target, bool cadre, Day d) {
    for (const auto& [id, l] : links) {
      if (l.cadre == cadre && l.target == target && l.from <= d && d <= l.to) return true;
    }
    return false;
  };
  for (const auto& [id, h] : households) {
    if (!h.second || h.first > as_of) continue;
    ++requiring;
    if (linked_on(id, true, as_of)) ++covered;
  }
  for (const auto& [code, v] : villages) {
    if (v.first > as_of) continue;
    ++poor;
    if (linked_on(code, false, as_of)) ++vcovered;
  }
  std::set<std::string> cadres;
  for (const auto& [id, l] : links) {
    if (l.cadre && l.from <= as_of && l.from <= l.to && l.to >= jan1) cadres.insert(l.holder);
  }
  absl::StatusOr<v1::AssessmentSummary> summary = Summary(w.store, "62", as_of);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->visits(), n_visits) << "as of day " << as_of;
  EXPECT_EQ(summary->households_requiring_link(), requiring);
  EXPECT_EQ(summary->households_covered(), covered);
  EXPECT_EQ(summary->poor_villages(), poor);
  EXPECT_EQ(summary->villages_covered(), vcovered);
  EXPECT_EQ(summary->cadres(), cadres.size());
}

}  // namespace
}  // namespace fieldsync::domain::assessment
