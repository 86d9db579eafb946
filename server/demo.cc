#include "server/demo.h"
#include "server/demo_internal.h"

#include <grpcpp/grpcpp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "base/uuid.h"
#include "base/time.h"
#include "domain/field_schema.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "server/directory.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"

namespace fieldsync::server {
namespace demo_internal {

// Where 皋兰县 is, roughly; the households' dwellings are spread around it.
constexpr double kBaseLat = 36.33;
constexpr double kBaseLng = 103.95;

std::string Uuid() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof bytes);
  return base::UuidV4(bytes);
}

// A valid 18-character resident ID number in the county.
std::string ResidentId(const std::string& county6, uint64_t n) {
  std::string first17 = absl::StrFormat("%s1970%02d%02d%03d", county6, 1 + n % 12, 1 + n % 28,
                                        n % 1000);
  return first17 + domain::ResidentIdCheckChar(first17);
}

// A demo device: an Ed25519 key (OpenSSL), enrolled for one user; makes
// signed events as a phone's app would.
class DemoDevice {
 public:
  DemoDevice() {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    EVP_PKEY_keygen_init(ctx);
    EVP_PKEY_keygen(ctx, &key_);
    EVP_PKEY_CTX_free(ctx);
  }
  ~DemoDevice() { EVP_PKEY_free(key_); }
  DemoDevice(const DemoDevice&) = delete;
  DemoDevice& operator=(const DemoDevice&) = delete;

  absl::Status Enroll(v1::AdminService::Stub& admin, v1::SyncService::Stub& sync,
                      const std::string& admin_token, const std::string& user_id) {
    if (key_ == nullptr) return absl::InternalError("demo: Ed25519 key generation failed");
    v1::IssueEnrollmentCodeRequest issue;
    issue.set_user_id(user_id);
    v1::IssueEnrollmentCodeResponse code;
    RETURN_IF_ERROR(Call(admin, &v1::AdminService::Stub::IssueEnrollmentCode, admin_token, issue,
                         &code, "IssueEnrollmentCode"));
    unsigned char pk[32];
    size_t pk_len = sizeof pk;
    EVP_PKEY_get_raw_public_key(key_, pk, &pk_len);
    v1::EnrollRequest enroll;
    enroll.set_code(code.code());
    enroll.set_ed25519_public_key(std::string(reinterpret_cast<char*>(pk), pk_len));
    enroll.set_device_model("demo device");
    enroll.set_device_name(absl::StrCat("demo device of ", user_id));
    v1::EnrollResponse enrolled;
    RETURN_IF_ERROR(
        Call(sync, &v1::SyncService::Stub::Enroll, std::string(), enroll, &enrolled, "Enroll"));
    id_ = enrolled.device_id();
    token_ = enrolled.token();
    return absl::OkStatus();
  }

  const std::string& token() const { return token_; }

  // A signed event on household `household_id` in `village`, made at `at`.
  v1::SignedEvent Make(const std::string& household_id, const std::string& village, absl::Time at,
                       const std::function<void(v1::Event&)>& body) {
    hlc_ = std::max(hlc_ + 1, sync::HlcAt(at));
    v1::Event event;
    event.set_event_id(Uuid());
    event.set_device_id(id_);
    event.set_device_seq(next_seq_++);
    event.set_hlc(hlc_);
    *event.mutable_device_time() = base::ToTimestamp(at);
    event.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    event.mutable_subject()->set_id(household_id);
    event.set_area_code(village);
    body(event);
    // Encoded once; the signature covers exactly these bytes (event.proto SignedEvent).
    v1::SignedEvent out;
    out.set_event(event.SerializeAsString());
    const std::string& canonical = out.event();
    unsigned char signature[64];
    size_t signature_len = sizeof signature;
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    EVP_DigestSignInit(md, nullptr, nullptr, nullptr, key_);
    EVP_DigestSign(md, signature, &signature_len,
                   reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size());
    EVP_MD_CTX_free(md);
    out.set_signature(std::string(reinterpret_cast<char*>(signature), signature_len));
    return out;
  }

 private:
  EVP_PKEY* key_ = nullptr;
  std::string id_;
  std::string token_;
  uint64_t next_seq_ = 1;
  uint64_t hlc_ = 0;
};

struct DemoHousehold {
  std::string id;
  std::string number;
  std::string village;
  double lat = 0;
  double lng = 0;
};

struct DemoCadre {
  std::string id;
  std::string name;
  v1::CadreRank rank;
  std::string unit_id;
  int quota_households;  // the seed's minimum links for the rank
  std::vector<size_t> households;  // indexes into the household list
  std::unique_ptr<DemoDevice> device;
};

// Pushes `events` as `device`; every result must be `want_conflict` ?
// a recorded conflict : accepted.
absl::Status PushAll(v1::SyncService::Stub& sync, DemoDevice& device,
                     const std::vector<v1::SignedEvent>& events, bool want_conflict,
                     absl::string_view what) {
  constexpr size_t kBatch = 50;  // well under the default push limits
  for (size_t from = 0; from < events.size(); from += kBatch) {
    v1::PushRequest request;
    for (size_t i = from; i < std::min(events.size(), from + kBatch); ++i) {
      *request.add_events() = events[i];
    }
    v1::PushResponse response;
    RETURN_IF_ERROR(
        Call(sync, &v1::SyncService::Stub::Push, device.token(), request, &response, what));
    for (const v1::PushResult& result : response.results()) {
      const bool ok = want_conflict ? result.has_conflict_recorded() : result.has_accepted();
      if (!ok) {
        return absl::InternalError(
            absl::StrCat("demo: ", what, ": unexpected push result ", result.ShortDebugString()));
      }
    }
    if (response.results_size() != request.events_size()) {
      return absl::InternalError(absl::StrCat("demo: ", what, ": ", response.results_size(),
                                              " results for ", request.events_size(), " events"));
    }
  }
  return absl::OkStatus();
}

v1::Location At(double lat, double lng, float accuracy_m, absl::Time when) {
  v1::Location location;
  location.set_lat(lat);
  location.set_lng(lng);
  location.set_accuracy_m(accuracy_m);
  *location.mutable_fix_time() = base::ToTimestamp(when);
  return location;
}

// What server/demo_internal.h offers of the demo devices to the province
// loader; the devices and their signing stay in DemoDevice above.
void DemoDeviceDeleter::operator()(DemoDevice* device) const { delete device; }

DemoDevicePtr NewDemoDevice() { return DemoDevicePtr(new DemoDevice()); }

absl::Status EnrollDemoDevice(DemoDevice& device, v1::AdminService::Stub& admin,
                              v1::SyncService::Stub& sync, const std::string& admin_token,
                              const std::string& user_id) {
  return device.Enroll(admin, sync, admin_token, user_id);
}

const std::string& DemoDeviceToken(const DemoDevice& device) { return device.token(); }

absl::Status PushDemoEvents(v1::SyncService::Stub& sync, DemoDevice& device,
                            const std::vector<DemoEventSpec>& specs, bool want_conflict,
                            absl::string_view what) {
  std::vector<decltype(device.Make(std::string(), std::string(), absl::Time(), nullptr))> events;
  events.reserve(specs.size());
  for (const DemoEventSpec& spec : specs) {
    events.push_back(device.Make(spec.household_id, spec.village, spec.at, spec.body));
  }
  return PushAll(sync, device, events, want_conflict, what);
}

}  // namespace demo_internal

using namespace demo_internal;  // NOLINT: the loader below is this file's user of them

absl::StatusOr<DemoSummary> LoadDemoCounty(const DemoCountyOptions& options) {
  const absl::Time began = absl::Now();
  DemoSummary summary;
  const std::string county6 = options.county_code;
  if (county6.size() != 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("demo: county code '", county6, "' is not 6 digits"));
  }
  const std::string county12 = county6 + "000000";
  summary.county_code = county12;

  // The county's line, its city's, the province's and its townships' from
  // the real tree; villages generated under each township.
  std::ifstream in(options.areas_csv_path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("demo: cannot read the areas CSV '",
                                            options.areas_csv_path,
                                            "' (run from the repository root, or set "
                                            "--demo_areas_csv)"));
  }
  const std::string province12 = county6.substr(0, 2) + "0000000000";
  const std::string city12 = county6.substr(0, 4) + "00000000";
  std::string province_line, city_line, county_line;
  std::vector<std::pair<std::string, std::string>> townships;  // code, name
  std::string township_lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() < 4) continue;
    if (f[0] == province12) province_line = line;
    if (f[0] == city12) city_line = line;
    if (f[0] == county12) {
      county_line = line;
      summary.county_name = f[3];
    }
    if (f[2] == "township" && f[1] == county12) {
      townships.emplace_back(f[0], f[3]);
      absl::StrAppend(&township_lines, line, "\n");
    }
  }
  if (county_line.empty() || townships.empty()) {
    return absl::NotFoundError(absl::StrCat("demo: county ", county12, " or its townships are not in ",
                                            options.areas_csv_path));
  }
  std::string csv = "code,parent,level,name,poor\n";
  for (const std::string* l : {&province_line, &city_line, &county_line}) {
    if (!l->empty()) absl::StrAppend(&csv, *l, "\n");
  }
  absl::StrAppend(&csv, township_lines);
  static constexpr const char* kVillageNames[] = {"红崖", "水川", "石洞", "黑石", "什川",
                                                   "蔡家河", "泉子", "马家坪", "沙岗"};
  std::vector<std::string> villages;
  for (const auto& [code, name] : townships) {
    for (int v = 1; v <= options.villages_per_township; ++v) {
      std::string village = absl::StrFormat("%s%03d", code.substr(0, 9), v);
      villages.push_back(village);
      absl::StrAppend(&csv, village, ",", code, ",village,", kVillageNames[villages.size() % 9],
                      "村,", v % 2, "\n");
    }
  }
  summary.townships = static_cast<int>(townships.size());
  summary.villages = static_cast<int>(villages.size());

  auto channel = grpc::CreateChannel(options.target, grpc::InsecureChannelCredentials());
  auto admin = v1::AdminService::NewStub(channel);
  auto sync = v1::SyncService::NewStub(channel);
  const std::string& token = options.admin_token;

  v1::ImportAreasRequest import;
  import.set_csv(csv);
  v1::ImportAreasResponse imported;
  RETURN_IF_ERROR(
      Call(*admin, &v1::AdminService::Stub::ImportAreas, token, import, &imported, "ImportAreas"));
  if (imported.errors_size() > 0) {
    return absl::InternalError(
        absl::StrCat("demo: ImportAreas refused the CSV: ", imported.errors(0).ShortDebugString()));
  }

  // Units: a provincial department and a county bureau pair up with the county.
  struct UnitSpec {
    const char* id;
    const char* name;
    v1::UnitLevel level;
    std::string area;
  };
  const std::vector<UnitSpec> units = {
      {"demo-unit-province", "省农业农村厅", v1::UNIT_LEVEL_PROVINCIAL, province12},
      {"demo-unit-county", "县乡村振兴局", v1::UNIT_LEVEL_COUNTY, county12},
  };
  for (const UnitSpec& spec : units) {
    v1::UpsertUnitRequest request;
    request.mutable_unit()->set_id(spec.id);
    request.mutable_unit()->set_name(spec.name);
    request.mutable_unit()->set_level(spec.level);
    request.mutable_unit()->set_kind(v1::UNIT_KIND_DEPARTMENT);
    request.mutable_unit()->set_area_code(spec.area);
    v1::UpsertUnitResponse response;
    RETURN_IF_ERROR(
        Call(*admin, &v1::AdminService::Stub::UpsertUnit, token, request, &response, "UpsertUnit"));
    ++summary.units;
  }

  auto upsert_user = [&](v1::User user) -> absl::Status {
    v1::UpsertUserRequest request;
    *request.mutable_user() = std::move(user);
    v1::UpsertUserResponse response;
    return Call(*admin, &v1::AdminService::Stub::UpsertUser, token, request, &response,
                "UpsertUser");
  };

  // The county's staff register the households (their tablet holds the county
  // scope), as the registry office does in 建檔立卡.
  {
    v1::User staff;
    staff.set_id("demo-county-staff");
    staff.set_name("县乡村振兴局 录入员");
    staff.set_role(v1::ROLE_COUNTY_STAFF);
    staff.add_scope_area_codes(county6);
    RETURN_IF_ERROR(upsert_user(staff));
  }
  DemoDevice tablet;
  RETURN_IF_ERROR(tablet.Enroll(*admin, *sync, token, "demo-county-staff"));

  std::vector<DemoHousehold> households;
  std::vector<v1::SignedEvent> registrations;
  const absl::Time season_start = options.now - absl::Hours(24 * 100);
  for (size_t v = 0; v < villages.size(); ++v) {
    for (int h = 1; h <= options.households_per_village; ++h) {
      DemoHousehold household;
      household.id = Uuid();
      household.number = absl::StrFormat("%s%03d", villages[v], h);
      household.village = villages[v];
      household.lat = kBaseLat + 0.02 * static_cast<double>(v % 4) + 0.001 * h;
      household.lng = kBaseLng + 0.02 * static_cast<double>(v / 4) + 0.001 * h;
      const uint64_t n = households.size();
      registrations.push_back(tablet.Make(
          household.id, household.village, season_start, [&](v1::Event& e) {
            v1::HouseholdRegistered* r = e.mutable_household_registered();
            r->set_household_number(household.number);
            r->set_head_name(absl::StrCat("户主", household.number.substr(9)));
            r->set_head_id_number(ResidentId(county6, n));
            *r->mutable_location() = At(household.lat, household.lng, 8, season_start);
            (*r->mutable_fields())["phone"].set_string_value(
                absl::StrFormat("1390931%04d", n));
            r->set_initial_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
          }));
      households.push_back(std::move(household));
    }
  }
  RETURN_IF_ERROR(PushAll(*sync, tablet, registrations, false, "Push (registrations)"));
  summary.households = static_cast<int>(households.size());

  // Cadres with the seed's quotas of linked households: a department-rank
  // cadre 3, county-rank cadres 2, the others 1.
  std::vector<DemoCadre> cadres;
  auto add_cadre = [&](std::string id, std::string name, v1::CadreRank rank, const char* unit,
                       int quota) {
    DemoCadre cadre{std::move(id), std::move(name), rank, unit, quota, {}, nullptr};
    cadres.push_back(std::move(cadre));
  };
  add_cadre("demo-cadre-01", "王建国", v1::CADRE_RANK_DEPARTMENT_RANK, "demo-unit-province", 3);
  add_cadre("demo-cadre-02", "李秀兰", v1::CADRE_RANK_COUNTY_RANK, "demo-unit-county", 2);
  add_cadre("demo-cadre-03", "张志强", v1::CADRE_RANK_COUNTY_RANK, "demo-unit-county", 2);
  add_cadre("demo-cadre-04", "刘海燕", v1::CADRE_RANK_OTHER, "demo-unit-county", 1);
  add_cadre("demo-cadre-05", "陈明", v1::CADRE_RANK_OTHER, "demo-unit-county", 1);
  add_cadre("demo-cadre-06", "杨丽", v1::CADRE_RANK_OTHER, "demo-unit-province", 1);
  add_cadre("demo-cadre-07", "赵军", v1::CADRE_RANK_OTHER, "demo-unit-county", 1);
  add_cadre("demo-cadre-08", "马福祥", v1::CADRE_RANK_OTHER, "demo-unit-county", 1);
  size_t next_household = 0;
  const v1::Date link_from = AddDays(DateOf(season_start), -1);
  for (DemoCadre& cadre : cadres) {
    v1::User user;
    user.set_id(cadre.id);
    user.set_name(cadre.name);
    user.set_role(v1::ROLE_CADRE);
    user.set_rank(cadre.rank);
    user.set_unit_id(cadre.unit_id);
    RETURN_IF_ERROR(upsert_user(user));
    for (int k = 0; k < cadre.quota_households && next_household < households.size(); ++k) {
      const size_t index = next_household++;
      v1::StartLinkRequest request;
      request.set_link_id(absl::StrCat("demo-link-", cadre.id.substr(11), "-", k + 1));
      request.set_cadre_id(cadre.id);
      request.mutable_target()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
      request.mutable_target()->set_id(households[index].id);
      request.set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
      *request.mutable_valid_from() = link_from;
      request.set_reason("双联帮扶结对");
      v1::StartLinkResponse response;
      RETURN_IF_ERROR(
          Call(*admin, &v1::AdminService::Stub::StartLink, token, request, &response, "StartLink"));
      cadre.households.push_back(index);
      ++summary.links;
    }
    cadre.device = std::make_unique<DemoDevice>();
    RETURN_IF_ERROR(cadre.device->Enroll(*admin, *sync, token, cadre.id));
    ++summary.cadres;
  }

  // A season of visits: most cadres meet the yearly quota of visits
  // (assessment.min_visits_per_year, 4 by default), the last two fall short;
  // a few visits have no GPS fix, a few a fix far from the dwelling.
  constexpr int kQuotaVisits = 4;
  int visit_number = 0;
  for (size_t c = 0; c < cadres.size(); ++c) {
    DemoCadre& cadre = cadres[c];
    const bool short_of_quota = c + 2 >= cadres.size();
    const int visits = short_of_quota ? 2 : kQuotaVisits + static_cast<int>(c % 2);
    if (short_of_quota) ++summary.cadres_short_of_quota;
    std::vector<v1::SignedEvent> events;
    for (int i = 0; i < visits; ++i) {
      const DemoHousehold& household = households[cadre.households[static_cast<size_t>(i) % cadre.households.size()]];
      const absl::Time start =
          season_start + absl::Hours(24 * (5 + 22 * i + static_cast<int>(c))) + absl::Hours(1);
      const absl::Time end = start + absl::Minutes(50 + 10 * (i % 3));
      ++visit_number;
      events.push_back(cadre.device->Make(household.id, household.village, end, [&](v1::Event& e) {
        if (visit_number % 9 == 4) {
          ++summary.visits_without_fix;  // no location: the phone had no fix
        } else if (visit_number % 9 == 7) {
          ++summary.visits_far_from_home;  // some 30 km away from the dwelling
          *e.mutable_location() = At(household.lat + 0.27, household.lng, 12, end);
        } else {
          *e.mutable_location() = At(household.lat + 0.0002, household.lng, 10, end);
        }
        v1::VisitRecorded* visit = e.mutable_visit_recorded();
        *visit->mutable_start_time() = base::ToTimestamp(start);
        *visit->mutable_end_time() = base::ToTimestamp(end);
        visit->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
        visit->set_notes("走访，了解生产生活情况");
        visit->set_household_confirmed(i % 2 == 0);
        if (i % 2 == 0) visit->set_confirmer_name("户主");
      }));
    }
    RETURN_IF_ERROR(PushAll(*sync, *cadre.device, events, false, "Push (visits)"));
    summary.visits += visits;
  }

  // Conflicts waiting for review: the county staff and a cadre both change
  // the same household's phone from its registered version 1, offline; the
  // staff's lands first, the cadre's is kept as an open conflict.
  const absl::Time edit_time = options.now - absl::Hours(24 * 3);
  for (size_t c = 0; c < 3 && c < cadres.size(); ++c) {
    DemoCadre& cadre = cadres[c];
    const DemoHousehold& household = households[cadre.households.front()];
    auto phone_patch = [&](const std::string& phone) {
      return [phone](v1::Event& e) {
        v1::FieldPatch* patch = e.mutable_household_fields_set()->add_patches();
        patch->set_field("phone");
        patch->mutable_value()->set_string_value(phone);
        patch->set_base_version(1);
      };
    };
    RETURN_IF_ERROR(PushAll(*sync, tablet,
                            {tablet.Make(household.id, household.village, edit_time,
                                         phone_patch(absl::StrFormat("1380931%04d", c)))},
                            false, "Push (staff edit)"));
    RETURN_IF_ERROR(PushAll(*sync, *cadre.device,
                            {cadre.device->Make(household.id, household.village,
                                                edit_time + absl::Hours(1),
                                                phone_patch(absl::StrFormat("1370931%04d", c)))},
                            true, "Push (cadre edit)"));
    ++summary.conflicts;
  }

  // A code for the person trying the demo: the first cadre's own fieldctl.
  summary.code_user = cadres.front().id;
  v1::IssueEnrollmentCodeRequest issue;
  issue.set_user_id(summary.code_user);
  v1::IssueEnrollmentCodeResponse code;
  RETURN_IF_ERROR(Call(*admin, &v1::AdminService::Stub::IssueEnrollmentCode, token, issue, &code,
                       "IssueEnrollmentCode"));
  summary.enrollment_code = code.code();
  summary.code_expires_at = absl::FromUnixSeconds(code.expires_at().seconds());
  summary.took = absl::Now() - began;
  return summary;
}

std::string DemoSummaryText(const DemoSummary& s, const std::string& server,
                            const std::string& admin_token_file, const std::string& fieldctl) {
  std::ostringstream out;
  out << "demo county loaded in " << absl::FormatDuration(absl::Trunc(s.took, absl::Milliseconds(1)))
      << ": " << s.county_name << " " << s.county_code << ", " << s.townships << " townships, "
      << s.villages << " villages, " << s.units << " units, " << s.cadres << " cadres, " << s.links
      << " links, " << s.households << " households, " << s.visits << " visits ("
      << s.visits_without_fix << " without GPS fix, " << s.visits_far_from_home
      << " far from the dwelling; " << s.cadres_short_of_quota << " cadres short of the quota), "
      << s.conflicts << " open conflicts\n"
      << "admin token in " << admin_token_file << "\n"
      << "try, as cadre " << s.code_user << " (the code works once, until "
      << absl::FormatTime("%Y-%m-%d %H:%M %z", s.code_expires_at, absl::FixedTimeZone(8 * 3600))
      << "):\n"
      << "  " << fieldctl << " --server " << server << " --db ./var/demo-phone.db enroll --code "
      << s.enrollment_code << "\n"
      << "  " << fieldctl << " --db ./var/demo-phone.db sync\n"
      << "  " << fieldctl << " --db ./var/demo-phone.db household list\n";
  return out.str();
}

}  // namespace fieldsync::server
