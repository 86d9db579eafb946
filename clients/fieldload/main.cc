// fieldload: N simulated devices through the client SDK against a running
// fieldsyncd (docs/client.md "fieldload"). It builds its own small world
// with the admin token (a county, a township, villages, a unit, one cadre
// per device, one household per device plus shared households, links), then
// each device records --visits visits offline (its "hours without signal")
// and a set share of edits to shared households, and all devices burst-sync
// at once; --relay-share of the devices hand their outbox to a township
// tablet instead, which relays it, and sync themselves afterwards (their
// events then come back as duplicates). Prints one JSON document: record
// and sync latency percentiles, throughput, outcomes, and `ratio`: the
// burst's events per second through the SDK against the same number of
// events pushed in one batch per device by the bare stub (signed in memory,
// no SQLite) to households of a second world-half in the same run.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clients/sdk/client.h"
#include "clients/sdk/event_signing.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"

namespace fieldsync::fieldload {
namespace {

struct Options {
  std::string server = "127.0.0.1:50051";
  std::string token_file;
  std::string dir = "fieldload-data";
  int devices = 8;
  int visits = 50;
  double relay_share = 0.25;
  double shared_edit_share = 0.05;  // Share of recordings that edit a shared household.
  int shared_households = 2;
  uint32_t seed = 1;
};

constexpr char kUsage[] =
    "usage: fieldload --token-file FILE [--server HOST:PORT] [--dir DIR] [--devices N]\n"
    "         [--visits V] [--relay-share F] [--shared-edit-share F] [--shared-households K]\n"
    "         [--seed S]\n"
    "  Runs N simulated devices through the client SDK against fieldsyncd and prints JSON.\n"
    "  Needs an admin token; makes its own areas (county 629901), unit and users.\n";

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(p * (values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

std::string Latency(const std::vector<double>& ms) {
  char buffer[160];
  std::snprintf(
      buffer, sizeof buffer, "{\"p50_ms\":%.2f,\"p90_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f}",
      Percentile(ms, 0.5), Percentile(ms, 0.9), Percentile(ms, 0.99), Percentile(ms, 1.0));
  return buffer;
}

int Fail(const std::string& what, const absl::Status& status) {
  std::cerr << "fieldload: " << what << ": " << status << "\n";
  return 1;
}

v1::Event Visit(const std::string& household, absl::Time at) {
  v1::Event event;
  event.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  event.mutable_subject()->set_id(household);
  v1::VisitRecorded* visit = event.mutable_visit_recorded();
  visit->mutable_start_time()->set_seconds(absl::ToUnixSeconds(at));
  visit->mutable_end_time()->set_seconds(absl::ToUnixSeconds(at + absl::Minutes(40)));
  visit->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
  visit->set_notes("走訪農戶，了解生產生活情況，宣講幫扶政策");
  return event;
}

int Run(const Options& o) {
  std::ifstream token_in(o.token_file);
  std::string token;
  std::getline(token_in, token);
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty()) {
    std::cerr << "fieldload: --token-file must name a file with an admin token\n" << kUsage;
    return 2;
  }
  std::filesystem::create_directories(o.dir);
  auto channel = client::MakeChannel(o.server);
  auto admin = v1::AdminService::NewStub(channel);
  auto call = [&](auto rpc, const auto& request, auto* response) -> absl::Status {
    auto context = client::MakeContext(token);
    grpc::Status status = (admin.get()->*rpc)(context.get(), request, response);
    if (status.ok()) return absl::OkStatus();
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  };
  const std::string run_id = client::NewUuid().substr(0, 8);
  // A world of its own: a county outside Gansu's real codes (62 99 01).
  const std::string county = "629901", township = "629901001", village = "629901001001";
  {
    v1::ImportAreasRequest areas;
    areas.set_csv(absl::StrCat("code,parent,level,name\n620000000000,,province,甘肃省\n",
                               "629900000000,620000000000,city,負載市\n",
                               "629901000000,629900000000,county,負載縣\n",
                               "629901001000,629901000000,township,負載鄉\n",
                               "629901001001,629901001000,village,負載村\n"));
    v1::ImportAreasResponse done;
    if (auto s = call(&v1::AdminService::Stub::ImportAreas, areas, &done); !s.ok()) {
      return Fail("import areas", s);
    }
    v1::UpsertUnitRequest unit;
    unit.mutable_unit()->set_id("LOAD-U");
    unit.mutable_unit()->set_name("負載單位");
    unit.mutable_unit()->set_area_code("629901001000");
    v1::UpsertUnitResponse unit_done;
    if (auto s = call(&v1::AdminService::Stub::UpsertUnit, unit, &unit_done); !s.ok()) {
      return Fail("upsert unit", s);
    }
  }
  auto enroll = [&](const std::string& user_id, v1::Role role, const std::string& scope,
                    const std::string& name) -> absl::StatusOr<std::unique_ptr<client::Client>> {
    v1::UpsertUserRequest user;
    user.mutable_user()->set_id(user_id);
    user.mutable_user()->set_name(user_id);
    user.mutable_user()->set_role(role);
    if (role == v1::ROLE_CADRE) {
      user.mutable_user()->set_rank(v1::CADRE_RANK_OTHER);
      user.mutable_user()->set_unit_id("LOAD-U");
    }
    if (!scope.empty()) user.mutable_user()->add_scope_area_codes(scope);
    v1::UpsertUserResponse user_done;
    if (auto s = call(&v1::AdminService::Stub::UpsertUser, user, &user_done); !s.ok()) return s;
    v1::IssueEnrollmentCodeRequest code;
    code.set_user_id(user_id);
    v1::IssueEnrollmentCodeResponse issued;
    if (auto s = call(&v1::AdminService::Stub::IssueEnrollmentCode, code, &issued); !s.ok())
      return s;
    client::ClientOptions options;
    options.server = o.server;
    auto c = client::Client::Open(absl::StrCat(o.dir, "/", name, "-", run_id, ".db"), options);
    if (!c.ok()) return c.status();
    auto id = (*c)->Enroll(issued.code(), name);
    if (!id.ok()) return id.status();
    return std::move(*c);
  };

  auto tablet =
      enroll(absl::StrCat("load-town-", run_id), v1::ROLE_TOWNSHIP_STAFF, township, "tablet");
  if (!tablet.ok()) return Fail("enroll tablet", tablet.status());
  // Households: one per device, plus the shared ones.
  std::vector<std::string> own(o.devices), shared(o.shared_households);
  auto register_household = [&](const std::string& number) -> absl::StatusOr<std::string> {
    v1::Event event;
    const std::string id = client::NewUuid();
    event.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    event.mutable_subject()->set_id(id);
    event.set_area_code(village);
    event.mutable_household_registered()->set_household_number(number);
    event.mutable_household_registered()->set_head_name("戶主");
    event.mutable_household_registered()->set_head_id_number("11010519491231002X");
    event.mutable_household_registered()->set_initial_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
    auto recorded = (*tablet)->Record(event);
    if (!recorded.ok()) return recorded.status();
    return id;
  };
  for (int i = 0; i < o.devices; ++i) {
    auto id = register_household(absl::StrCat("L", run_id, "-", i));
    if (!id.ok()) return Fail("register", id.status());
    own[i] = *id;
  }
  for (int i = 0; i < o.shared_households; ++i) {
    auto id = register_household(absl::StrCat("S", run_id, "-", i));
    if (!id.ok()) return Fail("register", id.status());
    shared[i] = *id;
  }
  if (auto r = (*tablet)->Sync(); !r.ok()) return Fail("tablet sync", r.status());

  std::vector<std::unique_ptr<client::Client>> phones;
  for (int i = 0; i < o.devices; ++i) {
    const std::string user = absl::StrCat("load-cadre-", run_id, "-", i);
    auto phone = enroll(user, v1::ROLE_CADRE, "", absl::StrCat("phone", i));
    if (!phone.ok()) return Fail("enroll phone", phone.status());
    std::vector<std::string> targets = {own[i]};
    targets.insert(targets.end(), shared.begin(), shared.end());
    for (const std::string& household : targets) {
      v1::StartLinkRequest link;
      link.set_cadre_id(user);
      link.mutable_target()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
      link.mutable_target()->set_id(household);
      link.set_role(v1::LINK_ROLE_HOUSEHOLD_HELPER);
      v1::StartLinkResponse linked;
      if (auto s = call(&v1::AdminService::Stub::StartLink, link, &linked); !s.ok()) {
        return Fail("start link", s);
      }
    }
    if (auto r = (*phone)->Sync(); !r.ok()) return Fail("first sync", r.status());
    phones.push_back(std::move(*phone));
  }

  // Offline: each device records its visits and some shared edits.
  std::mt19937 random(o.seed);
  std::vector<double> record_ms;
  int shared_edits = 0;
  const absl::Time day = absl::Now() - absl::Hours(10);
  for (int i = 0; i < o.devices; ++i) {
    for (int v = 0; v < o.visits; ++v) {
      v1::Event event;
      std::uniform_real_distribution<double> coin(0, 1);
      if (!shared.empty() && coin(random) < o.shared_edit_share) {
        event.mutable_subject()->set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
        event.mutable_subject()->set_id(shared[v % shared.size()]);
        v1::FieldPatch* patch = event.mutable_household_fields_set()->add_patches();
        patch->set_field("phone");
        patch->mutable_value()->set_string_value(absl::StrCat("139", 10000000 + i * 1000 + v));
        auto household = phones[i]->Household(shared[v % shared.size()]);
        if (household.ok()) {
          auto it = household->fields().find("phone");
          patch->set_base_version(it == household->fields().end() ? 0 : it->second.version());
        }
        ++shared_edits;
      } else {
        event = Visit(own[i], day + absl::Minutes(v * 10));
      }
      absl::Time start = absl::Now();
      auto recorded = phones[i]->Record(event);
      if (!recorded.ok()) return Fail("record", recorded.status());
      record_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    }
  }

  // Relayed devices hand their bundles to the tablet.
  const int relayed = static_cast<int>(o.devices * o.relay_share);
  for (int i = 0; i < relayed; ++i) {
    const std::string bundle = absl::StrCat(o.dir, "/phone", i, "-", run_id, ".bundle");
    if (auto n = phones[i]->ExportBundle(bundle); !n.ok()) return Fail("export", n.status());
    if (auto n = (*tablet)->ImportBundle(bundle); !n.ok()) return Fail("import", n.status());
  }

  // The burst: the tablet relays while the other devices sync, all at once.
  std::mutex mu;
  std::vector<double> sync_ms;
  client::SyncReport total;
  absl::Status first_error;
  auto add = [&](const client::SyncReport& r) {
    total.pushed += r.pushed;
    total.accepted += r.accepted;
    total.duplicates += r.duplicates;
    total.rejected += r.rejected;
    total.conflicts += r.conflicts;
    total.held += r.held;
    total.retries += r.retries;
    total.gzip_bytes_sent += r.gzip_bytes_sent;
    total.bytes_sent += r.bytes_sent;
    total.visits += r.visits;
  };
  const absl::Time burst_start = absl::Now();
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    absl::Time start = absl::Now();
    auto r = (*tablet)->Sync();
    std::lock_guard<std::mutex> lock(mu);
    if (!r.ok()) {
      if (first_error.ok()) first_error = r.status();
      return;
    }
    sync_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
    add(*r);
  });
  for (int i = relayed; i < o.devices; ++i) {
    threads.emplace_back([&, i] {
      absl::Time start = absl::Now();
      auto r = phones[i]->Sync();
      std::lock_guard<std::mutex> lock(mu);
      if (!r.ok()) {
        if (first_error.ok()) first_error = r.status();
        return;
      }
      sync_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      add(*r);
    });
  }
  for (std::thread& t : threads) t.join();
  const double burst_s = absl::ToDoubleSeconds(absl::Now() - burst_start);
  if (!first_error.ok()) return Fail("burst sync", first_error);
  // The relayed phones come back online later: duplicates only.
  uint32_t late_duplicates = 0, late_accepted = 0;
  for (int i = 0; i < relayed; ++i) {
    auto r = phones[i]->Sync();
    if (!r.ok()) return Fail("late sync", r.status());
    late_duplicates += r->duplicates;
    late_accepted += r->accepted;
  }

  // Baseline in the same run: the same number of events, signed in memory
  // and pushed by the bare stub in one batch per device (no SQLite, no
  // outbox bookkeeping), to the tablet's own households.
  const uint32_t baseline_events = total.pushed;
  double baseline_s = 0;
  {
    auto key = client::MakeDeviceKey();
    if (!key.ok()) return Fail("baseline key", key.status());
    v1::UpsertUserRequest user;
    const std::string user_id = absl::StrCat("load-base-", run_id);
    user.mutable_user()->set_id(user_id);
    user.mutable_user()->set_name(user_id);
    user.mutable_user()->set_role(v1::ROLE_TOWNSHIP_STAFF);
    user.mutable_user()->add_scope_area_codes(township);
    v1::UpsertUserResponse user_done;
    if (auto s = call(&v1::AdminService::Stub::UpsertUser, user, &user_done); !s.ok()) {
      return Fail("baseline user", s);
    }
    v1::IssueEnrollmentCodeRequest code;
    code.set_user_id(user_id);
    v1::IssueEnrollmentCodeResponse issued;
    if (auto s = call(&v1::AdminService::Stub::IssueEnrollmentCode, code, &issued); !s.ok()) {
      return Fail("baseline code", s);
    }
    auto sync = v1::SyncService::NewStub(channel);
    v1::EnrollRequest enroll_request;
    enroll_request.set_code(issued.code());
    enroll_request.set_ed25519_public_key(key->public_key);
    v1::EnrollResponse enrolled;
    {
      grpc::ClientContext context;
      if (grpc::Status s = sync->Enroll(&context, enroll_request, &enrolled); !s.ok()) {
        return Fail("baseline enroll", absl::UnavailableError(s.error_message()));
      }
    }
    uint64_t seq = 1;
    uint64_t hlc = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())) << 16;
    const uint32_t per_batch = std::max<uint32_t>(1, baseline_events / std::max(1, o.devices));
    const absl::Time start = absl::Now();
    for (uint32_t sent = 0; sent < baseline_events;) {
      v1::PushRequest request;
      for (uint32_t k = 0; k < per_batch && sent < baseline_events; ++k, ++sent) {
        v1::Event event = Visit(own[sent % own.size()], day);
        event.set_area_code(village);
        event.set_event_id(client::NewUuid());
        event.set_device_id(enrolled.device_id());
        event.set_device_seq(seq++);
        event.set_hlc(++hlc);
        event.mutable_device_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
        absl::StatusOr<v1::SignedEvent> signed_event = client::SignEvent(key->secret_key, event);
        if (!signed_event.ok()) return Fail("sign", signed_event.status());
        *request.add_events() = *std::move(signed_event);
      }
      v1::PushResponse response;
      auto context = client::MakeContext(enrolled.token());
      if (grpc::Status s = sync->Push(context.get(), request, &response); !s.ok()) {
        return Fail("baseline push", absl::UnavailableError(s.error_message()));
      }
    }
    baseline_s = absl::ToDoubleSeconds(absl::Now() - start);
  }

  const double sdk_rate = burst_s > 0 ? total.pushed / burst_s : 0;
  const double baseline_rate = baseline_s > 0 ? baseline_events / baseline_s : 0;
  std::printf(
      "{\"devices\":%d,\"visits_per_device\":%d,\"relayed_devices\":%d,\"shared_edits\":%d,"
      "\"record\":%s,\"sync\":%s,\"burst_seconds\":%.3f,\"events_pushed\":%u,"
      "\"events_per_second\":%.1f,\"accepted\":%u,\"duplicates\":%u,\"rejected\":%u,"
      "\"conflicts\":%u,\"held\":%u,\"retries\":%u,\"late_duplicates\":%u,\"late_accepted\":%u,"
      "\"bytes_per_visit\":%.1f,\"gzip_bytes_per_visit\":%.1f,\"baseline_events_per_second\":%.1f,\"ratio\":%.3f}\n",
      o.devices, o.visits, relayed, shared_edits, Latency(record_ms).c_str(),
      Latency(sync_ms).c_str(), burst_s, total.pushed, sdk_rate, total.accepted, total.duplicates,
      total.rejected, total.conflicts, total.held, total.retries, late_duplicates, late_accepted,
      total.visits == 0 ? 0.0 : static_cast<double>(total.bytes_sent) / total.visits,
      total.visits == 0 ? 0.0 : static_cast<double>(total.gzip_bytes_sent) / total.visits,
      baseline_rate, baseline_rate > 0 ? sdk_rate / baseline_rate : 0.0);
  return 0;
}

}  // namespace
}  // namespace fieldsync::fieldload

int main(int argc, char** argv) {
  fieldsync::fieldload::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    bool ok = true;
    if (arg == "--help" || arg == "-h") {
      std::cout << fieldsync::fieldload::kUsage;
      return 0;
    } else if (arg == "--server") {
      ok = value(&o.server);
    } else if (arg == "--token-file") {
      ok = value(&o.token_file);
    } else if (arg == "--dir") {
      ok = value(&o.dir);
    } else if (arg == "--devices") {
      ok = value(&v) && absl::SimpleAtoi(v, &o.devices) && o.devices > 0;
    } else if (arg == "--visits") {
      ok = value(&v) && absl::SimpleAtoi(v, &o.visits) && o.visits >= 0;
    } else if (arg == "--relay-share") {
      ok = value(&v) && absl::SimpleAtod(v, &o.relay_share);
    } else if (arg == "--shared-edit-share") {
      ok = value(&v) && absl::SimpleAtod(v, &o.shared_edit_share);
    } else if (arg == "--shared-households") {
      ok = value(&v) && absl::SimpleAtoi(v, &o.shared_households) && o.shared_households >= 0;
    } else if (arg == "--seed") {
      ok = value(&v) && absl::SimpleAtoi(v, &o.seed);
    } else {
      ok = false;
    }
    if (!ok) {
      std::cerr << "fieldload: bad argument " << arg << "\n" << fieldsync::fieldload::kUsage;
      return 2;
    }
  }
  if (o.token_file.empty()) {
    std::cerr << "fieldload: --token-file is required\n" << fieldsync::fieldload::kUsage;
    return 2;
  }
  return fieldsync::fieldload::Run(o);
}
