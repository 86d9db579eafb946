// report_bench: GetAssessment over the whole Gansu tree, and what the
// assessment aggregates add to a pushed visit's commit.
//
//   load       the Gansu area tree (the reference CSV down to townships, plus
//   (timed)    --villages_per_township generated villages, 40% designated
//              poor), one unit per county, --cadres cadres (ranks: 0.1%
//              provincial, 2% 地廳級, 10% 縣處級, the rest other) in their
//              county's unit, --households households (70% IDENTIFIED, 30%
//              EXITED) each with a location, a cadre link for 97% of the
//              households needing one (the rest are coverage gaps), a unit
//              link for 95% of the poor villages, an exit plan for 80% of the
//              households, and --visits visits in 2024 by the linked cadres
//              (fixes near the household; 2% without a fix; some shared
//              photos). Every event goes through the store's commit path and
//              the domain policy's Merge (the same code a Push runs after its
//              checks), which keeps the aggregates in the same WriteBatch.
//   reports    GetAssessment (summary + first page of --page_size) for the
//              province ("62") and for the county with the most households,
//              for 2024 (a past year: as of 31 December): cold (the store
//              just reopened: empty block cache; the OS page cache is not
//              dropped) and warm (median of --repeats).
//   push       --push_events more visits (at least 3 pairs), in pairs of
//              batches of --push_batch, one committed with the aggregates on
//              and one off (assessment.enabled = false), the order alternating
//              from pair to pair, on the loaded store: µs per event each
//              (wall and process CPU).
//
// Loading commits --load_batch events per Append call (one commit group).
// One JSON document on stdout (progress on stderr). `ratio` is the median of
// the pairs' ratios, push with aggregates over push without (the commit path
// only: a real Push adds signature checks and gRPC, so the end-to-end ratio
// is smaller; bench/assessment_push_e2e.sh measures that one).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "domain/assessment/report.h"
#include "domain/shuanglian_policy.h"
#include "storage/event_store.h"
#include "sync/event_codec.h"
#include "sync/store_reader.h"

namespace fieldsync::bench {
namespace {

namespace as = domain::assessment;

struct Flags {
  size_t households = 400000;
  size_t cadres = 100000;
  size_t visits = 2000000;
  size_t villages_per_township = 12;
  size_t push_events = 20000;
  size_t push_batch = 100;
  // Events per Append call (one commit group) while loading.
  size_t load_batch = 5000;
  size_t page_size = 100;
  int repeats = 5;
  std::string areas = FIELDSYNC_REPORT_AREAS_CSV;
  std::string data_dir;
};

// CPU time of the whole process (every thread: the store's committer too), ms:
// on a loaded machine wall time says more about the neighbours than about us.
double CpuMs() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

const absl::TimeZone kTz = absl::FixedTimeZone(8 * 3600);

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp out;
  out.set_seconds(absl::ToUnixSeconds(t));
  return out;
}

v1::SubjectRef Ref(v1::SubjectKind kind, const std::string& id) {
  v1::SubjectRef out;
  out.set_kind(kind);
  out.set_id(id);
  return out;
}

class Loader {
 public:
  Loader(storage::EventStore* store, const domain::ShuanglianPolicy* policy, size_t batch)
      : store_(store), policy_(policy), batch_(batch) {}

  void Add(v1::Event event, std::string actor, v1::Role role, absl::Time when) {
    *event.mutable_device_time() = Ts(when);
    event.set_device_id("bench-device");
    if (event.event_id().empty()) event.set_event_id(absl::StrCat("e", ++ids_));
    pending_.push_back({std::move(event), std::move(actor), role, when});
    if (pending_.size() >= batch_) Flush();
  }

  void Flush() {
    if (pending_.empty()) return;
    std::vector<storage::AppendEntry> entries;
    for (Pending& p : pending_) {
      storage::AppendEntry entry;
      entry.event_id = absl::StrCat(p.event.device_id(), "/", p.event.event_id());
      entry.payload = p.event.SerializeAsString();
      entry.prepare = [this, &p](storage::CommitContext& ctx) -> absl::Status {
        class View final : public sync::ProjectionView {
         public:
          View(storage::CommitContext& ctx, Loader* loader) : ctx_(ctx), loader_(loader) {}
          absl::StatusOr<std::optional<std::string>> Get(std::string_view key) override {
            ++loader_->gets_;
            ++loader_->gets_by_kind_[std::string(Kind(key))];
            auto value = ctx_.Get(key);
            if (value.ok() && value->has_value()) loader_->get_bytes_ += (*value)->size();
            return value;
          }
          absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Nearest(
              std::string_view prefix, std::string_view key, bool forward) override {
            ++loader_->gets_;
            ++loader_->gets_by_kind_[std::string(Kind(key))];
            auto entry = ctx_.Nearest(prefix, key, forward);
            if (entry.ok() && entry->has_value()) loader_->get_bytes_ += (*entry)->second.size();
            return entry;
          }
          void Put(std::string_view key, std::string_view value) override {
            ++loader_->puts_;
            ++loader_->puts_by_kind_[std::string(Kind(key))];
            loader_->put_bytes_ += key.size() + value.size();
            ctx_.Put(key, value);
          }
          void Delete(std::string_view key) override { ctx_.Delete(key); }

         private:
          storage::CommitContext& ctx_;
          Loader* loader_;
        } view(ctx, this);
        sync::EventMeta meta;
        meta.author.actor = p.actor;
        meta.author.role = p.role;
        meta.author.device_id = p.event.device_id();
        meta.offset = ctx.offset();
        meta.adopted_hlc = ctx.offset();
        meta.received_at = p.when;
        meta.push_clock_offset = absl::Seconds(5);
        absl::StatusOr<sync::MergeResult> result = policy_->Merge(p.event, meta, view);
        if (!result.ok()) return result.status();
        if (result->rejection) ++rejected_;
        return absl::OkStatus();
      };
      entries.push_back(std::move(entry));
    }
    absl::StatusOr<std::vector<storage::AppendResult>> done = store_->Append(std::move(entries));
    if (!done.ok()) {
      std::fprintf(stderr, "append failed: %s\n", done.status().ToString().c_str());
      std::exit(1);
    }
    committed_ += pending_.size();
    pending_.clear();
  }

  void set_policy(const domain::ShuanglianPolicy* policy) { policy_ = policy; }
  size_t committed() const { return committed_; }
  // Projection reads and writes of the Merges so far (bytes read, written).
  size_t gets_ = 0, get_bytes_ = 0, puts_ = 0, put_bytes_ = 0;
  // The same by record kind: the key up to its third '/' ("dom/as/n").
  std::map<std::string, size_t> gets_by_kind_, puts_by_kind_;
  static std::string_view Kind(std::string_view key) {
    size_t at = 0;
    for (int i = 0; i < 3 && at != std::string_view::npos; ++i) at = key.find('/', at + 1);
    return key.substr(0, at);
  }
  void ResetCounts() {
    gets_ = get_bytes_ = puts_ = put_bytes_ = 0;
    gets_by_kind_.clear();
    puts_by_kind_.clear();
  }
  size_t rejected() const { return rejected_; }

 private:
  struct Pending {
    v1::Event event;
    std::string actor;
    v1::Role role;
    absl::Time when;
  };
  storage::EventStore* store_;
  const domain::ShuanglianPolicy* policy_;
  std::vector<Pending> pending_;
  size_t batch_;
  size_t ids_ = 0, committed_ = 0, rejected_ = 0;
};

struct Household {
  std::string id, village;
  double lat, lng;
  bool needs;
  std::vector<size_t> cadres;
};

int Run(const Flags& flags) {
  std::filesystem::path dir = flags.data_dir.empty()
                                  ? std::filesystem::temp_directory_path() /
                                        absl::StrCat("report_bench_", getpid())
                                  : std::filesystem::path(flags.data_dir);
  std::filesystem::remove_all(dir);
  std::mt19937_64 rng(42);
  auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };

  // The area tree: counties and townships from the CSV, generated villages.
  std::ifstream csv(flags.areas);
  if (!csv) {
    std::fprintf(stderr, "cannot read %s\n", flags.areas.c_str());
    return 1;
  }
  std::vector<v1::Area> areas;
  std::vector<std::string> counties;
  std::map<std::string, std::vector<std::string>> villages_of_county;
  std::vector<std::string> villages;
  std::string line;
  std::getline(csv, line);
  while (std::getline(csv, line)) {
    std::vector<std::string> cols = absl::StrSplit(line, ',');
    if (cols.size() < 4) continue;
    if (cols[2] == "county") counties.push_back(cols[0].substr(0, 6));
    if (cols[2] != "township") continue;
    for (size_t v = 1; v <= flags.villages_per_township; ++v) {
      v1::Area area;
      area.set_code(absl::StrFormat("%s%03d", cols[0].substr(0, 9), v));
      area.set_parent_code(cols[0]);
      area.set_level(v1::AREA_LEVEL_VILLAGE);
      area.set_name(absl::StrCat(cols[3], v, "村"));
      area.set_designated_poor(pick(10) < 4);
      villages.push_back(area.code());
      villages_of_county[area.code().substr(0, 6)].push_back(area.code());
      areas.push_back(std::move(area));
    }
  }
  std::fprintf(stderr, "%zu counties, %zu villages\n", counties.size(), villages.size());

  domain::ShuanglianPolicy on;
  domain::DomainOptions off_options;
  off_options.assessment.enabled = false;
  domain::ShuanglianPolicy off(off_options);
  storage::StoreOptions store_options;
  auto opened = storage::OpenEventStore(dir.string(), store_options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<storage::EventStore> store = *std::move(opened);
  Loader loader(store.get(), &on, flags.load_batch);
  const absl::Time jan1 = absl::FromCivil(absl::CivilDay(2024, 1, 1), kTz);
  const auto load_start = std::chrono::steady_clock::now();

  for (size_t i = 0; i < areas.size(); i += 400) {
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_AREA, "620000000000");
    e.set_area_code("620000000000");
    for (size_t j = i; j < std::min(areas.size(), i + 400); ++j) {
      *e.mutable_area_imported()->add_areas() = areas[j];
    }
    loader.Add(std::move(e), "admin", v1::ROLE_ADMIN, jan1 - absl::Hours(24 * 30));
  }
  for (const std::string& county : counties) {
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_UNIT, "U" + county);
    v1::Unit* unit = e.mutable_unit_upserted()->mutable_unit();
    unit->set_id("U" + county);
    unit->set_name("unit " + county);
    unit->set_area_code(county + "000000");
    loader.Add(std::move(e), "admin", v1::ROLE_ADMIN, jan1 - absl::Hours(24 * 30));
  }
  // Cadres, each of one county.
  std::vector<std::string> cadre_county(flags.cadres);
  std::map<std::string, std::vector<size_t>> cadres_of_county;
  for (size_t c = 0; c < flags.cadres; ++c) {
    const std::string& county = counties[pick(counties.size())];
    cadre_county[c] = county;
    cadres_of_county[county].push_back(c);
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_USER, absl::StrCat("c", c));
    v1::User* u = e.mutable_user_upserted()->mutable_user();
    u->set_id(absl::StrCat("c", c));
    u->set_name(absl::StrCat("幹部", c % 977));
    u->set_role(v1::ROLE_CADRE);
    const size_t r = pick(1000);
    u->set_rank(r < 1 ? v1::CADRE_RANK_PROVINCIAL_LEADER
                      : r < 21 ? v1::CADRE_RANK_DEPARTMENT_RANK
                               : r < 121 ? v1::CADRE_RANK_COUNTY_RANK : v1::CADRE_RANK_OTHER);
    u->set_unit_id("U" + county);
    loader.Add(std::move(e), "admin", v1::ROLE_ADMIN, jan1 - absl::Hours(24 * 30));
  }
  // Households in villages of counties that have cadres.
  std::vector<Household> households(flags.households);
  std::map<std::string, size_t> households_of_county;
  for (size_t h = 0; h < flags.households; ++h) {
    Household& hh = households[h];
    std::string county;
    do {
      county = counties[pick(counties.size())];
    } while (cadres_of_county[county].empty() || villages_of_county[county].empty());
    const auto& vs = villages_of_county[county];
    hh.village = vs[pick(vs.size())];
    hh.id = absl::StrFormat("%08x-0000-4000-8000-%012x", h, h);
    // Households cluster around their county (a cadre's households are a
    // few km apart, as in the field), counties spread over the province.
    const size_t ci = static_cast<size_t>(std::stoul(county.substr(2))) % 97;
    hh.lat = 33.0 + 0.07 * static_cast<double>(ci) + uniform(-0.1, 0.1);
    hh.lng = 93.0 + 0.14 * static_cast<double>(ci) + uniform(-0.1, 0.1);
    hh.needs = pick(10) < 7;
    ++households_of_county[county];
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, hh.id);
    e.set_area_code(hh.village);
    v1::HouseholdRegistered* r = e.mutable_household_registered();
    r->set_household_number(absl::StrCat("N", h));
    r->set_head_name(absl::StrCat("戶主", h));
    r->set_head_id_number("110101199001011237");
    r->mutable_location()->set_lat(hh.lat);
    r->mutable_location()->set_lng(hh.lng);
    r->set_initial_status(hh.needs ? v1::HOUSEHOLD_STATUS_IDENTIFIED : v1::HOUSEHOLD_STATUS_EXITED);
    loader.Add(std::move(e), "town", v1::ROLE_TOWNSHIP_STAFF, jan1 - absl::Hours(24 * 20));
  }
  // Links: the households needing one (97%), to a cadre of their county.
  size_t links = 0;
  for (size_t h = 0; h < flags.households; ++h) {
    Household& hh = households[h];
    if (!hh.needs || pick(100) < 3) continue;
    const auto& cs = cadres_of_county[hh.village.substr(0, 6)];
    const size_t c = cs[pick(cs.size())];
    hh.cadres.push_back(c);
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, hh.id);
    e.set_area_code(hh.village);
    v1::LinkStarted* l = e.mutable_link_started();
    l->set_link_id(absl::StrCat("L", ++links));
    l->set_cadre_id(absl::StrCat("c", c));
    l->set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
    l->mutable_valid_from()->set_year(2023);
    l->mutable_valid_from()->set_month(6);
    l->mutable_valid_from()->set_day(1);
    loader.Add(std::move(e), "admin", v1::ROLE_ADMIN, jan1 - absl::Hours(24 * 10));
  }
  for (const v1::Area& area : areas) {
    if (!area.designated_poor() || pick(100) < 5) continue;
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_VILLAGE, area.code());
    e.set_area_code(area.code());
    v1::LinkStarted* l = e.mutable_link_started();
    l->set_link_id(absl::StrCat("L", ++links));
    l->set_unit_id(absl::StrCat("U", area.code().substr(0, 6)));
    l->set_role(v1::LINK_ROLE_VILLAGE_UNIT);
    l->mutable_valid_from()->set_year(2023);
    l->mutable_valid_from()->set_month(6);
    l->mutable_valid_from()->set_day(1);
    loader.Add(std::move(e), "admin", v1::ROLE_ADMIN, jan1 - absl::Hours(24 * 10));
  }
  // Exit plans for 80%.
  for (const Household& hh : households) {
    if (!hh.needs || pick(10) >= 8 || hh.cadres.empty()) continue;
    v1::Event e;
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, hh.id);
    e.set_area_code(hh.village);
    v1::PlanRevised* p = e.mutable_plan_revised();
    p->set_plan_id(absl::StrCat(hh.id, "/2024"));
    p->set_kind(v1::PLAN_KIND_HOUSEHOLD_EXIT);
    p->set_year(2024);
    v1::PlanItem* item = p->add_items();
    item->set_item_id("i1");
    item->set_category(static_cast<v1::MeasureCategory>(1));
    item->set_content("養殖");
    item->set_year(2024);
    loader.Add(std::move(e), absl::StrCat("c", hh.cadres[0]), v1::ROLE_CADRE,
               jan1 + absl::Hours(24 * 20));
  }
  std::vector<size_t> linked;
  for (size_t h = 0; h < households.size(); ++h) {
    if (!households[h].cadres.empty()) linked.push_back(h);
  }
  const size_t setup_events = loader.committed() + 0;
  auto make_visit = [&](size_t n) {
    const Household& hh = households[linked[pick(linked.size())]];
    const absl::Time start = jan1 + absl::Minutes(static_cast<int64_t>(pick(365 * 24 * 60)));
    v1::Event e;
    e.set_event_id(absl::StrCat("v", n));
    *e.mutable_subject() = Ref(v1::SUBJECT_KIND_HOUSEHOLD, hh.id);
    e.set_area_code(hh.village);
    v1::VisitRecorded* v = e.mutable_visit_recorded();
    *v->mutable_start_time() = Ts(start);
    *v->mutable_end_time() = Ts(start + absl::Minutes(30 + static_cast<int64_t>(pick(120))));
    v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
    if (pick(50) == 0) v->add_photo_sha256(std::string(32, static_cast<char>(pick(200))));
    if (pick(50) != 0) {
      e.mutable_location()->set_lat(hh.lat + uniform(-0.005, 0.005));
      e.mutable_location()->set_lng(hh.lng + uniform(-0.005, 0.005));
    }
    return std::make_tuple(std::move(e), absl::StrCat("c", hh.cadres[0]), start + absl::Hours(3));
  };
  for (size_t n = 0; n < flags.visits; ++n) {
    auto [e, actor, when] = make_visit(n);
    loader.Add(std::move(e), actor, v1::ROLE_CADRE, when);
    if (n % 200000 == 0 && n > 0) {
      std::fprintf(stderr, "%zu visits, %.0f s\n", n,
                   Ms(std::chrono::steady_clock::now() - load_start) / 1000);
    }
  }
  loader.Flush();
  const double load_ms = Ms(std::chrono::steady_clock::now() - load_start);
  std::fprintf(stderr, "loaded %zu events (%zu rejected) in %.0f ms\n", loader.committed(),
               loader.rejected(), load_ms);

  // Reports: cold after a reopen, then warm.
  std::string county_max;
  size_t most = 0;
  for (const auto& [county, n] : households_of_county) {
    if (n > most) most = n, county_max = county;
  }
  store.reset();
  opened = storage::OpenEventStore(dir.string(), store_options);
  if (!opened.ok()) return 1;
  store = *std::move(opened);
  sync::StoreProjectionReader reader(store.get());
  const as::Day today = as::DayOf(absl::Now(), kTz);
  as::AssessmentOptions options;
  auto report = [&](const std::string& prefix, v1::GetAssessmentResponse* out) {
    v1::GetAssessmentRequest request;
    request.set_scope_prefix(prefix);
    request.set_year(2024);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = as::Assessment(reader, request, today, flags.page_size, options);
    const double ms = Ms(std::chrono::steady_clock::now() - t0);
    if (!r.ok()) {
      std::fprintf(stderr, "report %s: %s\n", prefix.c_str(), r.status().ToString().c_str());
      std::exit(1);
    }
    *out = *std::move(r);
    return ms;
  };
  auto warm = [&](const std::string& prefix) {
    std::vector<double> times;
    v1::GetAssessmentResponse r;
    for (int i = 0; i < flags.repeats; ++i) times.push_back(report(prefix, &r));
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  };
  v1::GetAssessmentResponse province, county;
  const double province_cold = report("62", &province);
  const double county_cold = report(county_max, &county);
  const double province_warm = warm("62");
  const double county_warm = warm(county_max);

  // Push: pairs of batches, one with the aggregates on and one off, the
  // order alternating from pair to pair; the ratio is the median of the
  // pairs' ratios (each pair ran on the same store at nearly the same time).
  Loader pusher(store.get(), &on, flags.push_batch);
  double on_ms = 0, off_ms = 0, on_cpu = 0, off_cpu = 0;
  size_t on_n = 0, off_n = 0, n = flags.visits;
  std::vector<double> pair_ratios, pair_cpu_ratios;
  for (size_t pair = 0; (on_n + off_n) < flags.push_events || pair_ratios.size() < 3; ++pair) {
    double wall[2] = {0, 0}, cpu[2] = {0, 0};
    for (int half = 0; half < 2; ++half) {
      const bool with = (pair + static_cast<size_t>(half)) % 2 == 0;
      pusher.set_policy(with ? &on : &off);
      pusher.ResetCounts();
      std::vector<std::tuple<v1::Event, std::string, absl::Time>> events;
      for (size_t i = 0; i < flags.push_batch; ++i) events.push_back(make_visit(++n));
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = CpuMs();
      for (auto& [e, actor, when] : events) pusher.Add(std::move(e), actor, v1::ROLE_CADRE, when);
      pusher.Flush();
      const double ms = Ms(std::chrono::steady_clock::now() - t0);
      wall[with ? 0 : 1] = ms;
      cpu[with ? 0 : 1] = CpuMs() - c0;
      (with ? on_cpu : off_cpu) += CpuMs() - c0;
      (with ? on_ms : off_ms) += ms;
      (with ? on_n : off_n) += flags.push_batch;
      if (pair == 0) {
        std::fprintf(stderr, "%s: per event %.1f gets (%.0f B), %.1f puts (%.0f B)\n",
                     with ? "with aggregates" : "without",
                     static_cast<double>(pusher.gets_) / flags.push_batch,
                     static_cast<double>(pusher.get_bytes_) / flags.push_batch,
                     static_cast<double>(pusher.puts_) / flags.push_batch,
                     static_cast<double>(pusher.put_bytes_) / flags.push_batch);
        for (const auto& [kind, count] : pusher.gets_by_kind_) {
          std::fprintf(stderr, "  gets %s: %.2f\n", kind.c_str(),
                       static_cast<double>(count) / flags.push_batch);
        }
        for (const auto& [kind, count] : pusher.puts_by_kind_) {
          std::fprintf(stderr, "  puts %s: %.2f\n", kind.c_str(),
                       static_cast<double>(count) / flags.push_batch);
        }
      }
    }
    pair_ratios.push_back(wall[0] / wall[1]);
    pair_cpu_ratios.push_back(cpu[0] / cpu[1]);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  const double ratio = median(pair_ratios);
  const double cpu_ratio = median(pair_cpu_ratios);
  const double us_on = on_ms * 1000 / static_cast<double>(on_n);
  const double us_off = off_ms * 1000 / static_cast<double>(off_n);
  const double cpu_on = on_cpu * 1000 / static_cast<double>(on_n);
  const double cpu_off = off_cpu * 1000 / static_cast<double>(off_n);

  std::printf(
      "{\"bench\": \"report_bench\", \"households\": %zu, \"cadres\": %zu, \"visits\": %zu, "
      "\"villages\": %zu, \"setup_events\": %zu, \"events_loaded\": %zu, \"rejected\": %zu, "
      "\"load_ms\": %.0f, \"load_events_per_s\": %.0f,\n"
      " \"province\": {\"prefix\": \"62\", \"cold_ms\": %.2f, \"warm_ms\": %.2f, \"cadres\": %u, "
      "\"cadres_meeting_all\": %u, \"households_requiring_link\": %u, \"households_covered\": %u, "
      "\"poor_villages\": %u, \"visits\": %u, \"flagged_visits\": %u, \"page_entries\": %d},\n"
      " \"county\": {\"prefix\": \"%s\", \"cold_ms\": %.2f, \"warm_ms\": %.2f, \"cadres\": %u, "
      "\"households_requiring_link\": %u, \"visits\": %u},\n"
      " \"push\": {\"events_each\": %zu, \"batch\": %zu, \"us_per_event_with_aggregates\": %.2f, "
      "\"us_per_event_without\": %.2f, \"added_us_per_event\": %.2f, "
      "\"cpu_us_per_event_with_aggregates\": %.2f, \"cpu_us_per_event_without\": %.2f, "
      "\"added_cpu_us_per_event\": %.2f, \"pairs\": %zu, \"cpu_ratio\": %.3f},\n"
      " \"goals\": {\"province_ms\": 1000, \"county_ms\": 50, \"push_ratio\": 1.10},\n"
      " \"ratio\": %.3f}\n",
      flags.households, flags.cadres, flags.visits, villages.size(), setup_events,
      loader.committed(), loader.rejected(), load_ms,
      static_cast<double>(loader.committed()) * 1000 / load_ms, province_cold, province_warm,
      province.summary().cadres(), province.summary().cadres_meeting_all(),
      province.summary().households_requiring_link(), province.summary().households_covered(),
      province.summary().poor_villages(), province.summary().visits(),
      province.summary().flagged_visits(),
      province.cadres_size() + province.coverage_gaps_size() + province.missing_plans_size(),
      county_max.c_str(), county_cold, county_warm, county.summary().cadres(),
      county.summary().households_requiring_link(), county.summary().visits(), on_n,
      flags.push_batch, us_on, us_off, us_on - us_off, cpu_on, cpu_off, cpu_on - cpu_off,
      pair_ratios.size(), cpu_ratio, ratio);
  store.reset();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace fieldsync::bench

int main(int argc, char** argv) {
  fieldsync::bench::Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      std::string prefix = absl::StrCat("--", name, "=");
      if (arg.rfind(prefix, 0) == 0) return arg.substr(prefix.size());
      return std::nullopt;
    };
    auto number = [&](const char* name, size_t* out) {
      if (auto v = value(name)) {
        if (!absl::SimpleAtoi(*v, out)) {
          std::fprintf(stderr, "bad %s\n", name);
          std::exit(2);
        }
        return true;
      }
      return false;
    };
    size_t repeats = 0;
    if (number("households", &flags.households) || number("cadres", &flags.cadres) ||
        number("visits", &flags.visits) ||
        number("villages_per_township", &flags.villages_per_township) ||
        number("push_events", &flags.push_events) || number("push_batch", &flags.push_batch) ||
        number("load_batch", &flags.load_batch) ||
        number("page_size", &flags.page_size)) {
      continue;
    }
    if (number("repeats", &repeats)) {
      flags.repeats = static_cast<int>(std::max<size_t>(repeats, 1));
    } else if (auto v = value("areas")) {
      flags.areas = *v;
    } else if (auto v = value("data_dir")) {
      flags.data_dir = *v;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", arg.c_str());
      return 2;
    }
  }
  return fieldsync::bench::Run(flags);
}
