#include "server/demo_province.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "base/time.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "server/demo_internal.h"
#include "server/directory.h"

namespace fieldsync::server {
namespace {

namespace di = demo_internal;

// Roughly the middle of Gansu; dwellings are spread around each county's
// place on a grid (the CSV has no coordinates).
constexpr double kBaseLat = 36.0;
constexpr double kBaseLng = 103.8;
constexpr int kVillagesPerUnit = 4;
constexpr int kQuotaVisits = 4;  // assessment.min_visits_per_year's default

struct County {
  std::string code12;
  std::string line;
  std::vector<std::string> township_lines;
  std::vector<std::string> townships;  // 12-digit codes
};

struct Village {
  std::string code;
  size_t county = 0;  // index into the chosen counties
  size_t first_household = 0;
  size_t households = 0;
  std::string unit_id;
};

struct Household {
  std::string id;
  std::string number;
  size_t village = 0;
  double lat = 0;
  double lng = 0;
};

struct Cadre {
  std::string id;
  v1::CadreRank rank = v1::CADRE_RANK_OTHER;
  std::string unit_id;
  size_t first_household = 0;
  size_t households = 0;
};

// A gRPC connection of its own per worker (a channel argument that differs
// keeps gRPC from sharing one subchannel between them).
struct Connection {
  explicit Connection(const std::string& target, int index) {
    grpc::ChannelArguments args;
    args.SetInt("fieldsync.demo.worker", index);
    auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    admin = v1::AdminService::NewStub(channel);
    sync = v1::SyncService::NewStub(channel);
  }
  std::unique_ptr<v1::AdminService::Stub> admin;
  std::unique_ptr<v1::SyncService::Stub> sync;
};

// Runs body(item, worker) for item in [0, n) on `workers` threads; the first
// error stops the others from taking new items and is returned.
absl::Status ParallelFor(size_t n, int workers,
                         const std::function<absl::Status(size_t item, int worker)>& body) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status first = absl::OkStatus();
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (size_t i = next++; i < n && !failed; i = next++) {
        absl::Status status = body(i, w);
        if (!status.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = status;
          failed = true;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return first;
}

// Progress of one phase: a line at the start, about every tenth and at the end.
class Progress {
 public:
  Progress(const DemoProvinceOptions& options, absl::Time began, std::string what, size_t total)
      : options_(options), began_(began), what_(std::move(what)), total_(total) {}
  void Add(size_t n) {
    const size_t done = done_ += n;
    const size_t step = std::max<size_t>(1, total_ / 10);
    if (done / step != (done - n) / step || done == total_) Print(done);
  }

 private:
  void Print(size_t done) {
    if (!options_.progress) return;
    std::lock_guard<std::mutex> lock(mu_);
    options_.progress(absl::StrFormat(
        "demo province: %s %d/%d (%s)", what_, done, total_,
        absl::FormatDuration(absl::Trunc(absl::Now() - began_, absl::Milliseconds(100)))));
  }
  const DemoProvinceOptions& options_;
  const absl::Time began_;
  const std::string what_;
  const size_t total_;
  std::atomic<size_t> done_{0};
  std::mutex mu_;
};

int QuotaOf(v1::CadreRank rank) {
  switch (rank) {
    case v1::CADRE_RANK_DEPARTMENT_RANK:
      return 3;
    case v1::CADRE_RANK_COUNTY_RANK:
      return 2;
    default:
      return 1;
  }
}

constexpr const char* kSurnames[] = {"王", "李", "张", "刘", "陈", "杨", "赵", "马", "何", "郭"};
constexpr const char* kGivenNames[] = {"建国", "秀兰", "志强", "海燕", "明", "丽", "军", "福祥"};
constexpr const char* kVillageNames[] = {"红崖", "水川", "石洞", "黑石", "什川",
                                         "蔡家河", "泉子", "马家坪", "沙岗"};

}  // namespace

absl::Status ParseDemoProvinceSize(const std::string& text, DemoProvinceOptions* options) {
  std::vector<std::string> parts = absl::StrSplit(text, '/');
  int c = 0, v = 0, h = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &c) || !absl::SimpleAtoi(parts[1], &v) ||
      !absl::SimpleAtoi(parts[2], &h)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--demo_province_size: want COUNTIES/VILLAGES/HOUSEHOLDS, e.g. 75/6220/400000, got \"",
        text, "\""));
  }
  if (c < 1 || v < c || h < v) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--demo_province_size ", text,
        ": want at least 1 county, a village per county and a household per village"));
  }
  options->counties = c;
  options->villages = v;
  options->households = h;
  return absl::OkStatus();
}

absl::StatusOr<DemoProvinceSummary> LoadDemoProvince(const DemoProvinceOptions& options) {
  const absl::Time began = absl::Now();
  DemoProvinceSummary summary;
  auto say = [&](const std::string& line) {
    if (options.progress) options.progress(line);
  };

  // 1. The tree: the first `counties` counties by code that have townships.
  std::ifstream in(options.areas_csv_path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("demo: cannot read the areas CSV '",
                                            options.areas_csv_path,
                                            "' (run from the repository root, or set "
                                            "--demo_areas_csv)"));
  }
  std::map<std::string, std::string> upper_lines;  // province and cities, by code
  std::map<std::string, County> counties_by_code;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() < 4) continue;
    if (f[2] == "province" || f[2] == "city") upper_lines[f[0]] = line;
    if (f[2] == "county") {
      counties_by_code[f[0]].code12 = f[0];
      counties_by_code[f[0]].line = line;
    }
    if (f[2] == "township") {
      County& county = counties_by_code[f[1]];
      county.townships.push_back(f[0]);
      county.township_lines.push_back(line);
    }
  }
  std::vector<County> counties;
  for (auto& [code, county] : counties_by_code) {
    if (county.line.empty() || county.townships.empty()) continue;
    if (static_cast<int>(counties.size()) < options.counties) counties.push_back(std::move(county));
  }
  if (static_cast<int>(counties.size()) < options.counties) {
    return absl::InvalidArgumentError(absl::StrCat("demo: ", options.areas_csv_path, " has ",
                                                   counties.size(),
                                                   " counties with townships; the demo wants ",
                                                   options.counties));
  }
  summary.counties = static_cast<int>(counties.size());

  // 2. Villages, spread evenly over the counties, then over each county's
  // townships; households spread evenly over the villages.
  std::vector<Village> villages;
  std::string csv = "code,parent,level,name,poor\n";
  {
    std::set<std::string> uppers;
    for (const County& county : counties) {
      uppers.insert(county.code12.substr(0, 2) + "0000000000");
      uppers.insert(county.code12.substr(0, 4) + "00000000");
    }
    for (const std::string& code : uppers) {
      if (auto it = upper_lines.find(code); it != upper_lines.end()) {
        absl::StrAppend(&csv, it->second, "\n");
      }
    }
  }
  for (size_t c = 0; c < counties.size(); ++c) {
    const County& county = counties[c];
    absl::StrAppend(&csv, county.line, "\n");
    for (const std::string& t : county.township_lines) absl::StrAppend(&csv, t, "\n");
    summary.townships += static_cast<int>(county.townships.size());
    const size_t in_county = options.villages / counties.size() +
                             (c < options.villages % counties.size() ? 1 : 0);
    std::vector<int> per_township(county.townships.size(), 0);
    for (size_t v = 0; v < in_county; ++v) {
      const size_t t = v % county.townships.size();
      const int number = ++per_township[t];
      if (number > 999) {
        return absl::InvalidArgumentError(absl::StrCat(
            "demo: more than 999 villages under township ", county.townships[t]));
      }
      Village village;
      village.code = absl::StrFormat("%s%03d", county.townships[t].substr(0, 9), number);
      village.county = c;
      absl::StrAppend(&csv, village.code, ",", county.townships[t], ",village,",
                      kVillageNames[villages.size() % 9], number, "村,1\n");
      villages.push_back(std::move(village));
    }
  }
  summary.villages = static_cast<int>(villages.size());

  std::vector<Household> households;
  households.reserve(options.households);
  for (size_t v = 0; v < villages.size(); ++v) {
    Village& village = villages[v];
    village.first_household = households.size();
    village.households = options.households / villages.size() +
                         (v < options.households % villages.size() ? 1 : 0);
    if (village.households > 999) {
      return absl::InvalidArgumentError(
          absl::StrCat("demo: more than 999 households in village ", village.code));
    }
    const double county_lat = kBaseLat + 0.1 * static_cast<double>(village.county % 10);
    const double county_lng = kBaseLng + 0.1 * static_cast<double>(village.county / 10);
    for (size_t h = 0; h < village.households; ++h) {
      Household household;
      household.id = di::Uuid();
      household.number = absl::StrFormat("%s%03d", village.code, h + 1);
      household.village = v;
      household.lat = county_lat + 0.002 * static_cast<double>(v % 20) + 0.0001 * h;
      household.lng = county_lng + 0.002 * static_cast<double>((v / 20) % 20) + 0.0001 * h;
      households.push_back(std::move(household));
    }
  }

  const int workers = std::max(1, options.workers);
  const int loaders =
      options.loaders > 0 ? options.loaders : std::clamp(options.households / 8000, 2, 48);
  const int tablets = options.tablets > 0 ? options.tablets
                                          : std::min<int>(8, static_cast<int>(counties.size()));
  std::vector<std::unique_ptr<Connection>> connections;
  for (int w = 0; w < workers; ++w) {
    connections.push_back(std::make_unique<Connection>(options.target, w));
  }
  v1::AdminService::Stub& admin = *connections[0]->admin;
  v1::SyncService::Stub& sync = *connections[0]->sync;
  const std::string& token = options.admin_token;

  v1::ImportAreasRequest import;
  import.set_csv(csv);
  v1::ImportAreasResponse imported;
  RETURN_IF_ERROR(di::Call(admin, &v1::AdminService::Stub::ImportAreas, token, import, &imported,
                           "ImportAreas"));
  if (imported.errors_size() > 0) {
    return absl::InternalError(
        absl::StrCat("demo: ImportAreas refused the CSV: ", imported.errors(0).ShortDebugString()));
  }
  say(absl::StrCat("demo province: ", summary.counties, " counties, ", summary.townships,
                   " townships, ", summary.villages, " villages imported (",
                   absl::FormatDuration(absl::Trunc(absl::Now() - began, absl::Milliseconds(100))),
                   ")"));

  auto upsert_user = [&](v1::AdminService::Stub& stub, const std::string& as, v1::User user) {
    v1::UpsertUserRequest request;
    *request.mutable_user() = std::move(user);
    v1::UpsertUserResponse response;
    return di::Call(stub, &v1::AdminService::Stub::UpsertUser, as, request, &response,
                    "UpsertUser");
  };

  // 3. The loader's own admin devices: one rate-limit bucket each.
  std::vector<di::DemoDevicePtr> loader_devices;
  std::vector<std::string> loader_tokens;
  for (int l = 0; l < loaders; ++l) {
    v1::User user;
    user.set_id(absl::StrFormat("demo-loader-%02d", l + 1));
    user.set_name(absl::StrFormat("演示数据导入 %02d", l + 1));
    user.set_role(v1::ROLE_ADMIN);
    RETURN_IF_ERROR(upsert_user(admin, token, user));
    loader_devices.push_back(di::NewDemoDevice());
    RETURN_IF_ERROR(di::EnrollDemoDevice(*loader_devices.back(), admin, sync, token, user.id()));
    loader_tokens.push_back(di::DemoDeviceToken(*loader_devices.back()));
    ++summary.devices;
  }
  // The admin token of the n-th call of a worker: the loaders in turn.
  std::atomic<size_t> calls{0};
  auto loader_token = [&]() -> const std::string& {
    return loader_tokens[calls++ % loader_tokens.size()];
  };
  say(absl::StrCat("demo province: ", loaders, " loader devices enrolled (",
                   absl::FormatDuration(absl::Trunc(absl::Now() - began, absl::Milliseconds(100))),
                   ")"));

  // 4. Units, one per kVillagesPerUnit villages of a county, each linking
  // its villages.
  const v1::Date link_from = AddDays(DateOf(options.now - absl::Hours(24 * 100)), -1);
  {
    std::vector<size_t> unit_first_village;  // the unit's villages start here
    for (size_t v = 0; v < villages.size(); ++v) {
      if (v == 0 || villages[v - 1].county != villages[v].county ||
          v - unit_first_village.back() >= kVillagesPerUnit) {
        unit_first_village.push_back(v);
      }
    }
    // Ids: the county and the unit's number within it.
    std::map<size_t, int> per_county;
    std::vector<std::string> unit_ids;
    for (size_t u = 0; u < unit_first_village.size(); ++u) {
      const size_t county = villages[unit_first_village[u]].county;
      unit_ids.push_back(absl::StrFormat("demo-unit-%s-%02d", counties[county].code12.substr(0, 6),
                                         ++per_county[county]));
      const size_t end =
          u + 1 < unit_first_village.size() ? unit_first_village[u + 1] : villages.size();
      for (size_t v = unit_first_village[u]; v < end; ++v) villages[v].unit_id = unit_ids[u];
    }
    Progress progress(options, began, "units and their village links", unit_ids.size());
    RETURN_IF_ERROR(ParallelFor(unit_ids.size(), workers, [&](size_t u, int w) -> absl::Status {
      v1::AdminService::Stub& stub = *connections[w]->admin;
      const size_t first = unit_first_village[u];
      const County& county = counties[villages[first].county];
      v1::UpsertUnitRequest request;
      request.mutable_unit()->set_id(unit_ids[u]);
      const std::vector<std::string> fields = absl::StrSplit(county.line, ',');
      request.mutable_unit()->set_name(absl::StrFormat("%s帮扶单位%d", fields[3], u + 1));
      request.mutable_unit()->set_level(v1::UNIT_LEVEL_COUNTY);
      request.mutable_unit()->set_kind(v1::UNIT_KIND_DEPARTMENT);
      request.mutable_unit()->set_area_code(county.code12);
      v1::UpsertUnitResponse response;
      RETURN_IF_ERROR(di::Call(stub, &v1::AdminService::Stub::UpsertUnit, loader_token(), request,
                               &response, "UpsertUnit"));
      for (size_t v = first; v < villages.size() && villages[v].unit_id == unit_ids[u]; ++v) {
        v1::StartLinkRequest link;
        link.set_link_id(absl::StrCat("demo-vlink-", villages[v].code));
        link.set_unit_id(unit_ids[u]);
        link.mutable_target()->set_kind(v1::SUBJECT_KIND_VILLAGE);
        link.mutable_target()->set_id(villages[v].code);
        link.set_role(v1::LINK_ROLE_VILLAGE_UNIT);
        *link.mutable_valid_from() = link_from;
        link.set_reason("联村帮扶");
        v1::StartLinkResponse linked;
        RETURN_IF_ERROR(di::Call(stub, &v1::AdminService::Stub::StartLink, loader_token(), link,
                                 &linked, "StartLink (village)"));
      }
      progress.Add(1);
      return absl::OkStatus();
    }));
    summary.units = static_cast<int>(unit_ids.size());
    summary.links += summary.villages;
  }

  // 5. Households, registered by county-staff tablets, each holding the
  // scope of every `tablets`-th county.
  {
    std::vector<di::DemoDevicePtr> tablet_devices;
    for (int t = 0; t < tablets; ++t) {
      v1::User staff;
      staff.set_id(absl::StrFormat("demo-staff-%02d", t + 1));
      staff.set_name(absl::StrFormat("县乡村振兴局 录入员%02d", t + 1));
      staff.set_role(v1::ROLE_COUNTY_STAFF);
      for (size_t c = t; c < counties.size(); c += tablets) {
        staff.add_scope_area_codes(counties[c].code12.substr(0, 6));
      }
      RETURN_IF_ERROR(upsert_user(admin, token, staff));
      tablet_devices.push_back(di::NewDemoDevice());
      RETURN_IF_ERROR(di::EnrollDemoDevice(*tablet_devices.back(), admin, sync, token, staff.id()));
      ++summary.devices;
    }
    const absl::Time registered_at = options.now - absl::Hours(24 * 100);
    Progress progress(options, began, "households registered", households.size());
    // One tablet per worker at a time: a device's events go in order.
    RETURN_IF_ERROR(ParallelFor(tablets, std::min(workers, tablets), [&](size_t t, int w) {
      for (size_t c = t; c < counties.size(); c += tablets) {
        std::vector<di::DemoEventSpec> specs;
        for (size_t v = 0; v < villages.size(); ++v) {
          if (villages[v].county != c) continue;
          for (size_t h = villages[v].first_household;
               h < villages[v].first_household + villages[v].households; ++h) {
            const Household& household = households[h];
            const std::string county6 = counties[c].code12.substr(0, 6);
            specs.push_back({household.id, villages[v].code, registered_at,
                             [&household, county6, h, registered_at](v1::Event& e) {
                               v1::HouseholdRegistered* r = e.mutable_household_registered();
                               r->set_household_number(household.number);
                               r->set_head_name(absl::StrCat("户主", household.number.substr(9)));
                               r->set_head_id_number(di::ResidentId(county6, h));
                               *r->mutable_location() =
                                   di::At(household.lat, household.lng, 8, registered_at);
                               (*r->mutable_fields())["phone"].set_string_value(
                                   absl::StrFormat("139%08d", h));
                               r->set_initial_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
                             }});
          }
        }
        // Pushed a slice at a time so that progress shows.
        constexpr size_t kSlice = 2000;
        for (size_t from = 0; from < specs.size(); from += kSlice) {
          std::vector<di::DemoEventSpec> slice(
              specs.begin() + from, specs.begin() + std::min(specs.size(), from + kSlice));
          RETURN_IF_ERROR(di::PushDemoEvents(*connections[w]->sync, *tablet_devices[t], slice,
                                             false, "Push (registrations)"));
          progress.Add(slice.size());
        }
      }
      return absl::OkStatus();
    }));
    summary.households = static_cast<int>(households.size());
  }

  // 6. Cadres of each village's unit, `households_per_cadre` households each.
  std::vector<Cadre> cadres;
  for (size_t v = 0; v < villages.size(); ++v) {
    const Village& village = villages[v];
    const size_t per = std::max(1, options.households_per_cadre);
    for (size_t from = 0; from < village.households; from += per) {
      Cadre cadre;
      cadre.id = absl::StrFormat("demo-cadre-%06d", cadres.size() + 1);
      cadre.unit_id = village.unit_id;
      cadre.first_household = village.first_household + from;
      cadre.households = std::min(per, village.households - from);
      // One in twenty department rank, three in twenty county rank; a rank
      // whose quota the cadre's households do not meet falls back to other.
      const size_t k = cadres.size() % 20;
      cadre.rank = k == 0   ? v1::CADRE_RANK_DEPARTMENT_RANK
                   : k <= 3 ? v1::CADRE_RANK_COUNTY_RANK
                            : v1::CADRE_RANK_OTHER;
      if (static_cast<int>(cadre.households) < QuotaOf(cadre.rank)) {
        cadre.rank = v1::CADRE_RANK_OTHER;
      }
      cadres.push_back(std::move(cadre));
    }
  }
  {
    Progress progress(options, began, "cadres and their household links", cadres.size());
    RETURN_IF_ERROR(ParallelFor(cadres.size(), workers, [&](size_t i, int w) -> absl::Status {
      v1::AdminService::Stub& stub = *connections[w]->admin;
      const Cadre& cadre = cadres[i];
      v1::User user;
      user.set_id(cadre.id);
      user.set_name(absl::StrCat(kSurnames[i % 10], kGivenNames[(i / 10) % 8]));
      user.set_role(v1::ROLE_CADRE);
      user.set_rank(cadre.rank);
      user.set_unit_id(cadre.unit_id);
      RETURN_IF_ERROR(upsert_user(stub, loader_token(), user));
      for (size_t k = 0; k < cadre.households; ++k) {
        v1::StartLinkRequest request;
        request.set_link_id(absl::StrCat("demo-link-", cadre.id.substr(11), "-", k + 1));
        request.set_cadre_id(cadre.id);
        request.mutable_target()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
        request.mutable_target()->set_id(households[cadre.first_household + k].id);
        request.set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
        *request.mutable_valid_from() = link_from;
        request.set_reason("双联帮扶结对");
        v1::StartLinkResponse response;
        RETURN_IF_ERROR(di::Call(stub, &v1::AdminService::Stub::StartLink, loader_token(), request,
                                 &response, "StartLink (household)"));
      }
      progress.Add(1);
      return absl::OkStatus();
    }));
    summary.cadres = static_cast<int>(cadres.size());
    summary.links += static_cast<int>(households.size());
    for (const Cadre& cadre : cadres) {
      ++summary.cadres_by_rank[cadre.rank == v1::CADRE_RANK_DEPARTMENT_RANK ? 0
                               : cadre.rank == v1::CADRE_RANK_COUNTY_RANK   ? 1
                                                                            : 2];
    }
  }

  // 7. A season of visits by a sample of cadres spread over the province.
  {
    const int visiting =
        options.visiting_cadres > 0
            ? std::min<int>(options.visiting_cadres, static_cast<int>(cadres.size()))
            : std::clamp<int>(static_cast<int>(villages.size()) / 150, 2,
                              std::min<int>(40, static_cast<int>(cadres.size())));
    const size_t stride = cadres.size() / static_cast<size_t>(visiting);
    const absl::Time season_start = options.now - absl::Hours(24 * 100);
    std::vector<di::DemoDevicePtr> phones;
    for (int p = 0; p < visiting; ++p) {
      phones.push_back(di::NewDemoDevice());
      RETURN_IF_ERROR(
          di::EnrollDemoDevice(*phones.back(), admin, sync, token, cadres[p * stride].id));
      ++summary.devices;
    }
    Progress progress(options, began, "cadres' visits recorded", visiting);
    std::atomic<int> visits{0}, short_of_quota{0};
    RETURN_IF_ERROR(ParallelFor(visiting, workers, [&](size_t p, int w) {
      const Cadre& cadre = cadres[p * stride];
      const bool short_of = p % 5 == 4;
      const int per_household = short_of ? 2 : kQuotaVisits;
      std::vector<di::DemoEventSpec> specs;
      for (int round = 0; round < per_household; ++round) {
        for (size_t k = 0; k < cadre.households; ++k) {
          const Household& household = households[cadre.first_household + k];
          const absl::Time start = season_start +
                                   absl::Hours(24 * (5 + 22 * round + static_cast<int>(k))) +
                                   absl::Hours(9);
          const absl::Time end = start + absl::Minutes(50 + 10 * (round % 3));
          const std::string village = villages[household.village].code;
          specs.push_back({household.id, village, end, [&household, start, end, round](v1::Event& e) {
                             *e.mutable_location() =
                                 di::At(household.lat + 0.0002, household.lng, 10, end);
                             v1::VisitRecorded* visit = e.mutable_visit_recorded();
                             *visit->mutable_start_time() = base::ToTimestamp(start);
                             *visit->mutable_end_time() = base::ToTimestamp(end);
                             visit->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
                             visit->set_notes("走访，了解生产生活情况");
                             visit->set_household_confirmed(round % 2 == 0);
                             if (round % 2 == 0) visit->set_confirmer_name("户主");
                           }});
        }
      }
      // A phone's events are in time order, as it records them.
      std::stable_sort(specs.begin(), specs.end(),
                       [](const di::DemoEventSpec& a, const di::DemoEventSpec& b) {
                         return a.at < b.at;
                       });
      RETURN_IF_ERROR(
          di::PushDemoEvents(*connections[w]->sync, *phones[p], specs, false, "Push (visits)"));
      visits += static_cast<int>(specs.size());
      if (short_of) ++short_of_quota;
      progress.Add(1);
      return absl::OkStatus();
    }));
    summary.visits = visits;
    summary.visiting_cadres = visiting;
    summary.cadres_short_of_quota = short_of_quota;
  }

  // 8. The loader's admin devices are not left behind as credentials.
  for (size_t l = 0; l < loader_devices.size(); ++l) {
    v1::ListDevicesRequest list;
    list.set_user_id(absl::StrFormat("demo-loader-%02d", l + 1));
    v1::ListDevicesResponse listed;
    RETURN_IF_ERROR(
        di::Call(admin, &v1::AdminService::Stub::ListDevices, token, list, &listed, "ListDevices"));
    for (const v1::Device& device : listed.devices()) {
      v1::RevokeDeviceRequest revoke;
      revoke.set_device_id(device.id());
      revoke.set_reason("demo province loaded");
      v1::RevokeDeviceResponse revoked;
      RETURN_IF_ERROR(di::Call(admin, &v1::AdminService::Stub::RevokeDevice, token, revoke,
                               &revoked, "RevokeDevice"));
    }
  }
  summary.took = absl::Now() - began;
  return summary;
}

std::string DemoProvinceSummaryText(const DemoProvinceSummary& s,
                                    const std::string& admin_token_file) {
  std::ostringstream out;
  out << "demo province loaded in "
      << absl::FormatDuration(absl::Trunc(s.took, absl::Milliseconds(100))) << ": " << s.counties
      << " counties, " << s.townships << " townships, " << s.villages << " villages, " << s.units
      << " units, " << s.cadres << " cadres (" << s.cadres_by_rank[0] << " department rank, "
      << s.cadres_by_rank[1] << " county rank, " << s.cadres_by_rank[2] << " other), " << s.links
      << " links, " << s.households << " households, " << s.visits << " visits by "
      << s.visiting_cadres << " cadres (" << s.cadres_short_of_quota
      << " short of the quota), " << s.devices << " devices enrolled\n"
      << "admin token in " << admin_token_file << "\n";
  return out.str();
}

}  // namespace fieldsync::server
