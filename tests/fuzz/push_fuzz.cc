// push_fuzz: what phones send, decoded and driven through the real push path.
//
// Each input is a serialized fieldsync.v1.PushRequest. Its SignedEvents whose
// bytes parse as an Event are made pushable the way a real device would make
// them (re-encoded and re-signed after the rules below); bytes that do not
// parse travel as they are (a MALFORMED event). Then they are pushed through
// SyncEngine::Push with the real ShuanglianPolicy on a RocksDB store in a
// temporary directory (one store for the whole process, seeded with a
// household, a member, plans, a visit, a proposal, a delivery and an open
// conflict, so that merges meet real state):
//   - device_id: the fixed test devices keep theirs; an id starting with "zz"
//     stays unknown (UNKNOWN_DEVICE); an empty one stays empty (MALFORMED);
//     any other is mapped onto a test device by its first byte.
//   - device_seq: set to the next one the engine expects for that device,
//     unless its low three bits are all set (then kept: gaps and reuse).
//   - event_id: a lowercase UUID outside the seed namespace ("33333333-")
//     becomes a fresh one (the same fresh one for equal ids in the input, and
//     references to it inside the push follow), so an input merges every time
//     it runs instead of turning into EVENT_ID_REUSED; other ids are kept.
//   - conflict_resolved.conflict_id "$last": the last conflict a push opened.
//   - signature: an empty or 64-byte one is replaced by the device's Ed25519
//     signature over the event's new bytes (as the engine verifies); any
//     other length is kept (a bad signature).
//   - the pusher: PushRequest.device_time.seconds mod 7 picks it: 0 the
//     signer of the first event, else one of the test devices (relays).
//     Scopes follow the role: the cadre its household, township and county
//     staff their area, HQ everything.
// A crash, a sanitizer report, a push answering other than OK or
// RESOURCE_EXHAUSTED, or an answer without one result per event is a finding
// (abort): a sequence gap is a Held result, never the push's status.
//
// The store is wiped and re-seeded every kResetEvery inputs so it stays small.
// PUSH_FUZZ_VERBOSE=1 in the environment prints every push result.
// Not thread-safe: libFuzzer calls the entry point from one thread.
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/text.h"
#include "domain/field_schema.h"
#include "domain/shuanglian_policy.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/sync_service.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/time_util.h"
#include "storage/event_store.h"
#include "sync/device_keys.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"
#include "sync/scope.h"
#include "sync/sync_engine.h"

namespace fieldsync::fuzz {
namespace {

using google::protobuf::util::TimeUtil;

constexpr char kCounty[] = "620102";
constexpr char kTownship[] = "620102001";
constexpr char kVillage[] = "620102001001";
constexpr char kHousehold[] = "11111111-1111-4111-8111-000000000001";
constexpr char kHousehold2[] = "11111111-1111-4111-8111-000000000002";
constexpr char kMember[] = "22222222-2222-4222-8222-000000000001";
constexpr char kSeedVisit[] = "33333333-3333-4333-8333-000000000001";
constexpr char kSeedProposal[] = "33333333-3333-4333-8333-000000000002";
constexpr char kSeedNamespace[] = "33333333-";
constexpr uint64_t kResetEvery = 20000;
constexpr char kDirPrefix[] = "fieldsync_push_fuzz_";

absl::Time Now() {
  // 2024-06-01 10:00 China Standard Time, as the sync tests.
  return absl::FromCivil(absl::CivilSecond(2024, 6, 1, 10, 0, 0), absl::FixedTimeZone(8 * 3600));
}

[[noreturn]] void Finding(const std::string& what) {
  std::fprintf(stderr, "push_fuzz finding: %s\n", what.c_str());
  std::fflush(stderr);
  abort();
}

struct Device {
  std::string id;
  std::string user_id;
  v1::Role role;
  std::string public_key;
  std::string secret_key;
  bool revoked = false;
};

// The fixed devices, with keys from fixed seeds (inputs stay reproducible).
std::vector<Device> MakeDevices() {
  struct Spec {
    const char* id;
    const char* user;
    v1::Role role;
    bool revoked;
  };
  const Spec specs[] = {
      {"fz-cadre", "fz-u-cadre", v1::ROLE_CADRE, false},
      {"fz-town", "fz-u-town", v1::ROLE_TOWNSHIP_STAFF, false},
      {"fz-county", "fz-u-county", v1::ROLE_COUNTY_STAFF, false},
      {"fz-hq", "fz-u-hq", v1::ROLE_HQ_ANALYST, false},
      {"fz-admin", "fz-u-admin", v1::ROLE_ADMIN, false},
      {"fz-revoked", "fz-u-revoked", v1::ROLE_CADRE, true},
      {"fz-seed", "fz-u-seed", v1::ROLE_COUNTY_STAFF, false},
      {"fz-seed2", "fz-u-seed2", v1::ROLE_COUNTY_STAFF, false},
  };
  std::vector<Device> devices;
  unsigned char n = 1;
  for (const Spec& spec : specs) {
    unsigned char seed[crypto_sign_SEEDBYTES];
    for (size_t i = 0; i < sizeof seed; ++i) seed[i] = static_cast<unsigned char>(n * 31 + i);
    ++n;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, seed);
    devices.push_back(Device{spec.id, spec.user, spec.role,
                             std::string(reinterpret_cast<char*>(pk), sizeof pk),
                             std::string(reinterpret_cast<char*>(sk), sizeof sk), spec.revoked});
  }
  return devices;
}

// The devices mapped onto by other ids (the first six; not the seeders).
constexpr size_t kFuzzDevices = 6;

class FixedKeys final : public sync::DeviceKeys {
 public:
  explicit FixedKeys(const std::vector<Device>* devices) : devices_(devices) {}
  absl::StatusOr<std::optional<sync::DeviceInfo>> Lookup(std::string_view id) const override {
    for (const Device& device : *devices_) {
      if (device.id == id) {
        sync::DeviceInfo info;
        info.public_key = device.public_key;
        info.user_id = device.user_id;
        info.role = device.role;
        info.revoked = device.revoked;
        return std::optional<sync::DeviceInfo>(info);
      }
    }
    return std::optional<sync::DeviceInfo>();
  }

 private:
  const std::vector<Device>* devices_;
};

sync::Scope ScopeOf(v1::Role role) {
  sync::Scope scope;
  switch (role) {
    case v1::ROLE_CADRE:
      scope.subject_keys.insert(absl::StrCat("household/", kHousehold));
      break;
    case v1::ROLE_TOWNSHIP_STAFF:
      scope.area_prefixes.push_back(kTownship);
      break;
    case v1::ROLE_COUNTY_STAFF:
      scope.area_prefixes.push_back(kCounty);
      break;
    case v1::ROLE_HQ_ANALYST:
    case v1::ROLE_ADMIN:
      scope.all = true;
      break;
    default:
      break;
  }
  return scope;
}

// Encodes `event` once and signs those bytes with the device's key.
v1::SignedEvent Seal(const Device& device, const v1::Event& event) {
  v1::SignedEvent out;
  out.set_event(event.SerializeAsString());
  unsigned char signature[crypto_sign_BYTES];
  crypto_sign_detached(
      signature, nullptr, reinterpret_cast<const unsigned char*>(out.event().data()),
      out.event().size(), reinterpret_cast<const unsigned char*>(device.secret_key.data()));
  out.set_signature(std::string(reinterpret_cast<char*>(signature), sizeof signature));
  return out;
}

std::string ResidentId(uint64_t n) {
  const std::string first17 = absl::StrFormat("620102%011d", n % 100000000000ULL);
  return first17 + domain::ResidentIdCheckChar(first17);
}

class World {
 public:
  World() : devices_(MakeDevices()), keys_(&devices_) {
    if (sodium_init() < 0) Finding("sodium_init failed");
    const char* base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    RemoveStoresOfDeadRuns(base);
    std::string path = absl::StrCat(base, "/", kDirPrefix, getpid(), "_XXXXXX");
    if (mkdtemp(path.data()) == nullptr) Finding("mkdtemp failed");
    dir_ = path;
    Open();
  }

  ~World() {
    Close();
    std::error_code ignored;  // Best effort: a leftover temp dir harms nothing.
    std::filesystem::remove_all(dir_, ignored);
  }

  // A finding aborts the process and leaves its store behind (in memory, on
  // /dev/shm): remove those of processes that are gone.
  static void RemoveStoresOfDeadRuns(const std::string& base) {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(base, error)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind(kDirPrefix, 0) != 0) continue;
      const long pid = std::strtol(name.c_str() + sizeof(kDirPrefix) - 1, nullptr, 10);
      if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        std::error_code ignored;  // Best effort.
        std::filesystem::remove_all(entry.path(), ignored);
      }
    }
  }

  void Run(const v1::PushRequest& request) {
    if (++runs_ % kResetEvery == 0) Reset();
    std::vector<v1::SignedEvent> pushed(request.events().begin(), request.events().end());
    // The parsed events (empty where the bytes do not parse: those go as they are).
    std::vector<v1::Event> events(pushed.size());
    std::vector<bool> parsed(pushed.size());
    for (size_t i = 0; i < pushed.size(); ++i) {
      parsed[i] = events[i].ParseFromString(pushed[i].event());
    }
    std::map<std::string, uint64_t> next_seq;
    std::map<std::string, std::string> fresh_ids;
    for (v1::Event& event : events) {
      if (base::IsUuid(event.event_id()) && event.event_id().rfind(kSeedNamespace, 0) != 0) {
        auto [it, added] = fresh_ids.emplace(event.event_id(), "");
        if (added) it->second = FreshUuid();
      }
    }
    auto remap = [&fresh_ids](std::string* id) {
      auto it = fresh_ids.find(*id);
      if (it != fresh_ids.end()) *id = it->second;
    };
    for (size_t i = 0; i < events.size(); ++i) {
      if (!parsed[i]) continue;
      v1::Event& event = events[i];
      const Device* device = MapDevice(event);
      if (device != nullptr && event.device_seq() % 8 != 7) {
        auto [it, added] = next_seq.emplace(device->id, 0);
        if (added) it->second = Expected(device->id);
        event.set_device_seq(it->second++);
      }
      remap(event.mutable_event_id());
      if (event.has_visit_corrected())
        remap(event.mutable_visit_corrected()->mutable_original_event_id());
      if (event.has_status_change_confirmed()) {
        remap(event.mutable_status_change_confirmed()->mutable_proposal_event_id());
      }
      if (event.has_status_change_proposed()) {
        for (std::string& id :
             *event.mutable_status_change_proposed()->mutable_evidence_event_ids()) {
          remap(&id);
        }
      }
      if (event.has_inspection_recorded()) {
        for (std::string& id : *event.mutable_inspection_recorded()->mutable_event_ids())
          remap(&id);
      }
      if (event.has_conflict_resolved() && event.conflict_resolved().conflict_id() == "$last") {
        event.mutable_conflict_resolved()->set_conflict_id(last_conflict_);
      }
      const std::string signature = pushed[i].signature();
      if (device != nullptr && (signature.empty() || signature.size() == 64)) {
        pushed[i] = Seal(*device, event);
      } else {
        pushed[i].set_event(event.SerializeAsString());
      }
    }

    const Device* pusher = nullptr;
    const int64_t pick = request.device_time().seconds();
    const size_t choice = static_cast<size_t>(pick < 0 ? -(pick + 1) : pick) % (kFuzzDevices + 1);
    if (choice > 0) {
      pusher = &devices_[choice - 1];
    } else if (!events.empty()) {
      pusher = Find(events[0].device_id());
    }
    if (pusher == nullptr) pusher = &devices_[0];
    Push(*pusher, pushed, /*seeding=*/false);
  }

 private:
  const Device* Find(const std::string& id) const {
    for (const Device& device : devices_) {
      if (device.id == id) return &device;
    }
    return nullptr;
  }

  // Applies the device_id rule of the file comment; the signing device, or
  // null if the event keeps an unknown or empty id.
  const Device* MapDevice(v1::Event& event) const {
    const std::string& id = event.device_id();
    if (id.empty() || id.rfind("zz", 0) == 0) return nullptr;
    if (const Device* known = Find(id)) return known;
    const Device& mapped = devices_[static_cast<unsigned char>(id[0]) % kFuzzDevices];
    event.set_device_id(mapped.id);
    return &mapped;
  }

  uint64_t Expected(const std::string& device_id) const {
    absl::StatusOr<uint64_t> expected = engine_->NextExpectedSeq(device_id);
    if (!expected.ok()) Finding(absl::StrCat("NextExpectedSeq: ", expected.status().ToString()));
    return *expected;
  }

  std::string FreshUuid() {
    const uint64_t n = ++uuids_;
    return absl::StrFormat("%08x-%04x-4%03x-8%03x-%012x", 0xf0220000u,
                           static_cast<uint32_t>(n >> 48), static_cast<uint32_t>((n >> 36) & 0xfff),
                           static_cast<uint32_t>((n >> 24) & 0xfff), n & 0xffffffffffffULL);
  }

  void Push(const Device& pusher, const std::vector<v1::SignedEvent>& events, bool seeding) {
    sync::PushContext context;
    context.actor = pusher.user_id;
    context.role = pusher.role;
    context.device_id = pusher.id;
    context.scope = ScopeOf(pusher.role);
    context.now = Now();
    const std::vector<Device>* devices = &devices_;
    context.scope_of_user = [devices](std::string_view user) -> absl::StatusOr<sync::Scope> {
      for (const Device& device : *devices) {
        if (device.user_id == user) return ScopeOf(device.role);
      }
      return sync::Scope();
    };
    absl::StatusOr<sync::PushOutcome> outcome = engine_->Push(context, events);
    if (!outcome.ok()) {
      const absl::StatusCode code = outcome.status().code();
      if (!seeding && code == absl::StatusCode::kResourceExhausted) {
        if (verbose_) std::fprintf(stderr, "  push: %s\n", outcome.status().ToString().c_str());
        return;  // Per-push errors a client can cause: expected.
      }
      Finding(absl::StrCat("Push answered ", outcome.status().ToString()));
    }
    const v1::PushResponse& response = outcome->response;
    if (response.results_size() != static_cast<int>(events.size())) {
      Finding(absl::StrCat("Push answered ", response.results_size(), " results for ",
                           events.size(), " events"));
    }
    for (const v1::PushResult& result : response.results()) {
      if (verbose_) std::fprintf(stderr, "  %s\n", result.ShortDebugString().c_str());
      if (result.outcome_case() == v1::PushResult::OUTCOME_NOT_SET) {
        Finding("a result without an outcome");
      }
      if (result.has_conflict_recorded() && result.conflict_recorded().conflict_ids_size() > 0) {
        last_conflict_ = result.conflict_recorded().conflict_ids(0);
      }
      if (seeding && (result.has_rejected() || result.has_held())) {
        Finding(absl::StrCat("a seed event was rejected: ", result.ShortDebugString()));
      }
    }
  }

  void Open() {
    storage::StoreOptions options;
    options.block_cache_bytes = 8 << 20;
    options.write_buffer_bytes = 4 << 20;
    options.max_background_jobs = 1;
    absl::StatusOr<std::unique_ptr<storage::EventStore>> store =
        storage::OpenEventStore(dir_, options);
    if (!store.ok()) Finding(absl::StrCat("OpenEventStore: ", store.status().ToString()));
    store_ = *std::move(store);
    sync::SyncOptions sync_options;
    sync_options.clock = [] { return Now(); };
    engine_ = std::make_unique<sync::SyncEngine>(store_.get(), &policy_, &keys_, sync_options);
    Seed();
  }

  void Close() {
    engine_.reset();
    store_.reset();
  }

  void Reset() {
    Close();
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
    std::filesystem::create_directories(dir_, error);
    if (error) Finding(absl::StrCat("cannot reset ", dir_, ": ", error.message()));
    Open();
  }

  // A signed event of `device` with the next sequence number.
  v1::SignedEvent Make(const Device& device, const v1::SubjectRef& subject, const std::string& area,
                       const std::function<void(v1::Event&)>& body, std::string event_id = "") {
    v1::Event event;
    event.set_event_id(event_id.empty() ? FreshUuid() : event_id);
    event.set_device_id(device.id);
    event.set_device_seq(Expected(device.id) + pending_[device.id]++);
    event.set_hlc(sync::HlcAt(Now()) + (++hlc_));
    *event.mutable_device_time() = TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(Now()));
    *event.mutable_subject() = subject;
    event.set_area_code(area);
    body(event);
    return Seal(device, event);
  }

  void Seed() {
    const Device& seed = *Find("fz-seed");
    const Device& seed2 = *Find("fz-seed2");
    v1::SubjectRef household;
    household.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
    household.set_id(kHousehold);
    v1::SubjectRef household2 = household;
    household2.set_id(kHousehold2);
    v1::SubjectRef village;
    village.set_kind(v1::SUBJECT_KIND_VILLAGE);
    village.set_id(kVillage);
    auto registered = [](const std::string& number, uint64_t n) {
      return [number, n](v1::Event& e) {
        v1::HouseholdRegistered* r = e.mutable_household_registered();
        r->set_household_number(number);
        r->set_head_name(absl::StrCat("戶主", number));
        r->set_head_id_number(ResidentId(n));
        (*r->mutable_fields())["attribute"].set_int_value(v1::HOUSEHOLD_ATTRIBUTE_GENERAL);
      };
    };
    auto plan = [](const std::string& subject_id, v1::PlanKind kind) {
      return [subject_id, kind](v1::Event& e) {
        v1::PlanRevised* p = e.mutable_plan_revised();
        p->set_plan_id(absl::StrCat(subject_id, "/2024"));
        p->set_kind(kind);
        p->set_year(2024);
        for (const char* id : {"i1", "i2"}) {
          v1::PlanItem* item = p->add_items();
          item->set_item_id(id);
          item->set_category(v1::MEASURE_CATEGORY_INDUSTRY);
          item->set_content(absl::StrCat("發展養殖 ", id));
          item->set_cost_fen(100000);
          item->set_year(2024);
        }
      };
    };
    pending_.clear();
    std::vector<v1::SignedEvent> first = {
        Make(seed, household, kVillage, registered("FZ-1", 1)),
        Make(seed, household2, kVillage, registered("FZ-2", 2)),
        Make(seed, household, kVillage,
             [](v1::Event& e) {
               v1::MemberAdded* m = e.mutable_member_added();
               m->set_member_id(kMember);
               m->set_name("李四");
               m->set_relation(v1::MEMBER_RELATION_HEAD);
             }),
        Make(seed, household, kVillage, plan(kHousehold, v1::PLAN_KIND_HOUSEHOLD_EXIT)),
        Make(seed, village, kVillage, plan(kVillage, v1::PLAN_KIND_VILLAGE)),
        Make(
            seed, household, kVillage,
            [](v1::Event& e) {
              v1::VisitRecorded* v = e.mutable_visit_recorded();
              *v->mutable_start_time() =
                  TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(Now() - absl::Hours(2)));
              *v->mutable_end_time() =
                  TimeUtil::SecondsToTimestamp(absl::ToUnixSeconds(Now() - absl::Hours(1)));
              v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
            },
            kSeedVisit),
        Make(
            seed, household, kVillage,
            [](v1::Event& e) {
              v1::StatusChangeProposed* p = e.mutable_status_change_proposed();
              p->set_from_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
              p->set_to_status(v1::HOUSEHOLD_STATUS_NOT_EXITED);
              p->set_reason("建檔立卡");
            },
            kSeedProposal),
        Make(seed, household, kVillage,
             [](v1::Event& e) {
               v1::MeasureDelivered* m = e.mutable_measure_delivered();
               m->set_plan_id(absl::StrCat(kHousehold, "/2024"));
               m->set_item_id("i1");
               m->set_amount_fen(50000);
               m->mutable_delivered_on()->set_year(2024);
               m->mutable_delivered_on()->set_month(5);
               m->mutable_delivered_on()->set_day(1);
             }),
        // Two county devices edit "notes" from the same (unset) state: an
        // open FIELD_CONCURRENT conflict ("$last" until a push opens another).
        Make(seed, household, kVillage, Patch("notes", "seed")),
    };
    Push(seed, first, /*seeding=*/true);
    pending_.clear();
    Push(seed2, {Make(seed2, household, kVillage, Patch("notes", "seed2"))}, /*seeding=*/true);
    pending_.clear();
  }

  static std::function<void(v1::Event&)> Patch(const std::string& field, const std::string& value) {
    return [field, value](v1::Event& e) {
      v1::FieldPatch* p = e.mutable_household_fields_set()->add_patches();
      p->set_field(field);
      p->mutable_value()->set_string_value(value);
    };
  }

  std::vector<Device> devices_;
  FixedKeys keys_;
  domain::ShuanglianPolicy policy_;
  std::string dir_;
  std::unique_ptr<storage::EventStore> store_;
  std::unique_ptr<sync::SyncEngine> engine_;
  std::map<std::string, uint64_t> pending_;  // Seeding: sequence numbers handed out.
  std::string last_conflict_;
  uint64_t runs_ = 0;
  uint64_t uuids_ = 0;
  uint64_t hlc_ = 0;
  // PUSH_FUZZ_VERBOSE=1 prints every result (for writing seeds).
  const bool verbose_ = getenv("PUSH_FUZZ_VERBOSE") != nullptr;
};

World& TheWorld() {
  // Made on first use, destroyed at exit (closing the store and removing its
  // directory).
  static World world;
  return world;
}

}  // namespace
}  // namespace fieldsync::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Most mutated inputs do not parse (invalid UTF-8 in a string field, ...):
  // protobuf's log line for each would only slow the run down.
  google::protobuf::SetLogHandler(nullptr);
  fieldsync::fuzz::TheWorld();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fieldsync::v1::PushRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return -1;  // Not a PushRequest.
  fieldsync::fuzz::TheWorld().Run(request);
  return 0;
}
