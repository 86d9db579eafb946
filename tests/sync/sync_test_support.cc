#include "tests/sync/sync_test_support.h"

#include <sodium.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/time.h"
#include "domain/domain_keys.h"
#include "domain/field_schema.h"
#include "sync/event_codec.h"
#include "sync/hlc.h"

namespace fieldsync::test {

absl::Time DefaultStart() {
  return absl::FromCivil(absl::CivilSecond(2024, 6, 1, 10, 0, 0), absl::FixedTimeZone(8 * 3600));
}

void MemoryDeviceKeys::Add(const std::string& device_id, sync::DeviceInfo info) {
  absl::MutexLock lock(&mu_);
  devices_[device_id] = std::move(info);
}

void MemoryDeviceKeys::Revoke(const std::string& device_id) {
  absl::MutexLock lock(&mu_);
  devices_[device_id].revoked = true;
}

absl::StatusOr<std::optional<sync::DeviceInfo>> MemoryDeviceKeys::Lookup(
    std::string_view device_id) const {
  absl::MutexLock lock(&mu_);
  auto it = devices_.find(device_id);
  if (it == devices_.end()) return std::optional<sync::DeviceInfo>();
  return std::optional<sync::DeviceInfo>(it->second);
}

std::string NewUuid() {
  static std::atomic<uint64_t> counter{1};
  static const uint64_t salt = [] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
  }();
  const uint64_t n = counter.fetch_add(1);
  const uint64_t hi = salt;
  const uint64_t lo = n;
  return absl::StrFormat("%08x-%04x-4%03x-8%03x-%012x", static_cast<uint32_t>(hi >> 32),
                         static_cast<uint32_t>((hi >> 16) & 0xffff),
                         static_cast<uint32_t>(hi & 0xfff),
                         static_cast<uint32_t>((lo >> 48) & 0xfff), lo & 0xffffffffffffULL);
}

std::string IdNumber(uint64_t n) {
  std::string first17 = absl::StrFormat("620102%011d", n % 100000000000ULL);
  // A plausible birth date is not checked; the check character is.
  return first17 + domain::ResidentIdCheckChar(first17);
}

v1::SubjectRef HouseholdRef(const std::string& id) {
  v1::SubjectRef ref;
  ref.set_kind(v1::SUBJECT_KIND_HOUSEHOLD);
  ref.set_id(id);
  return ref;
}

v1::SubjectRef VillageRef(const std::string& code) {
  v1::SubjectRef ref;
  ref.set_kind(v1::SUBJECT_KIND_VILLAGE);
  ref.set_id(code);
  return ref;
}

v1::FieldValue Str(const std::string& s) {
  v1::FieldValue v;
  v.set_string_value(s);
  return v;
}

v1::FieldValue Int(int64_t i) {
  v1::FieldValue v;
  v.set_int_value(i);
  return v;
}

SimDevice::SimDevice(std::string id, std::string user_id, v1::Role role,
                     std::function<absl::Time()> clock)
    : id_(std::move(id)), user_id_(std::move(user_id)), role_(role), clock_(std::move(clock)) {
  if (sodium_init() < 0) ADD_FAILURE() << "sodium_init failed";
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_keypair(pk, sk);
  public_key_.assign(reinterpret_cast<char*>(pk), sizeof pk);
  secret_key_.assign(reinterpret_cast<char*>(sk), sizeof sk);
}

sync::DeviceInfo SimDevice::Info() const {
  sync::DeviceInfo info;
  info.public_key = public_key_;
  info.user_id = user_id_;
  info.role = role_;
  return info;
}

void SimDevice::Sign(v1::Event& event) const { testsig::SignForTest(secret_key_, event); }

void SimDevice::Observe(uint64_t hlc) { hlc_ = std::max(hlc_, hlc); }

v1::Event SimDevice::Make(const v1::SubjectRef& subject, const std::string& area_code,
                          const std::function<void(v1::Event&)>& body) {
  hlc_ = std::max(hlc_ + 1, sync::HlcAt(clock_()));
  v1::Event event;
  event.set_event_id(NewUuid());
  event.set_device_id(id_);
  event.set_device_seq(next_seq_++);
  event.set_hlc(hlc_);
  *event.mutable_device_time() = base::ToTimestamp(clock_());
  *event.mutable_subject() = subject;
  event.set_area_code(area_code);
  body(event);
  Sign(event);
  return event;
}

v1::Event SimDevice::Register(const std::string& household_id, const std::string& village,
                              const std::string& number) {
  return Make(HouseholdRef(household_id), village, [&](v1::Event& e) {
    v1::HouseholdRegistered* r = e.mutable_household_registered();
    r->set_household_number(number);
    r->set_head_name(absl::StrCat("戶主", number));
    r->set_head_id_number(IdNumber(std::hash<std::string>()(number)));
    r->set_initial_status(v1::HOUSEHOLD_STATUS_IDENTIFIED);
    (*r->mutable_fields())["attribute"] = Int(v1::HOUSEHOLD_ATTRIBUTE_GENERAL);
  });
}

v1::Event SimDevice::SetField(const std::string& household_id, const std::string& village,
                              const std::string& field, const v1::FieldValue& value,
                              uint64_t base) {
  return Make(HouseholdRef(household_id), village, [&](v1::Event& e) {
    v1::FieldPatch* p = e.mutable_household_fields_set()->add_patches();
    p->set_field(field);
    *p->mutable_value() = value;
    p->set_base_version(base);
  });
}

v1::Event SimDevice::Visit(const v1::SubjectRef& subject, const std::string& village,
                           absl::Duration length) {
  return Make(subject, village, [&](v1::Event& e) {
    v1::VisitRecorded* v = e.mutable_visit_recorded();
    *v->mutable_start_time() = base::ToTimestamp(clock_() - length);
    *v->mutable_end_time() = base::ToTimestamp(clock_());
    v->set_purpose(v1::VISIT_PURPOSE_ROUTINE);
    v->set_notes("走訪，了解生產生活情況");
  });
}

v1::Event SimDevice::Propose(const std::string& household_id, const std::string& village,
                             v1::HouseholdStatus from, v1::HouseholdStatus to, uint64_t base) {
  return Make(HouseholdRef(household_id), village, [&](v1::Event& e) {
    v1::StatusChangeProposed* p = e.mutable_status_change_proposed();
    p->set_from_status(from);
    p->set_to_status(to);
    if (to == v1::HOUSEHOLD_STATUS_MONITORED) {
      p->set_monitoring_type(v1::MONITORING_TYPE_UNSTABLE_EXITED);
    }
    p->set_reason("收入達標");
    p->set_base_status_version(base);
  });
}

v1::Event SimDevice::Confirm(const std::string& household_id, const std::string& village,
                             const std::string& proposal_id, v1::HouseholdStatus from,
                             v1::HouseholdStatus to, v1::ReviewStage stage,
                             v1::ReviewDecision decision, uint64_t base) {
  return Make(HouseholdRef(household_id), village, [&](v1::Event& e) {
    v1::StatusChangeConfirmed* c = e.mutable_status_change_confirmed();
    c->set_proposal_event_id(proposal_id);
    c->set_from_status(from);
    c->set_to_status(to);
    if (to == v1::HOUSEHOLD_STATUS_MONITORED) {
      c->set_monitoring_type(v1::MONITORING_TYPE_UNSTABLE_EXITED);
    }
    c->set_stage(stage);
    c->set_decision(decision);
    if (decision == v1::REVIEW_DECISION_REJECT) c->set_note("不符合條件");
    c->set_base_status_version(base);
  });
}

v1::Event SimDevice::AddMember(const std::string& household_id, const std::string& village,
                               const std::string& member_id, const std::string& name) {
  return Make(HouseholdRef(household_id), village, [&](v1::Event& e) {
    v1::MemberAdded* m = e.mutable_member_added();
    m->set_member_id(member_id);
    m->set_name(name);
    m->set_relation(v1::MEMBER_RELATION_CHILD);
  });
}

v1::Event SimDevice::UpdateMember(const std::string& household_id, const std::string& village,
                                  const std::string& member_id, const std::string& field,
                                  const v1::FieldValue& value, uint64_t base) {
  return Make(HouseholdRef(household_id), village, [&](v1::Event& e) {
    v1::MemberUpdated* m = e.mutable_member_updated();
    m->set_member_id(member_id);
    v1::FieldPatch* p = m->add_patches();
    p->set_field(field);
    *p->mutable_value() = value;
    p->set_base_version(base);
  });
}

v1::Event SimDevice::RevisePlan(const std::string& household_id, const std::string& village,
                                int year, uint64_t base, const std::vector<std::string>& item_ids) {
  return Make(HouseholdRef(household_id), village, [&](v1::Event& e) {
    v1::PlanRevised* p = e.mutable_plan_revised();
    p->set_plan_id(absl::StrCat(household_id, "/", year));
    p->set_kind(v1::PLAN_KIND_HOUSEHOLD_EXIT);
    p->set_year(year);
    p->set_base_version(base);
    for (const std::string& id : item_ids) {
      v1::PlanItem* item = p->add_items();
      item->set_item_id(id);
      item->set_category(v1::MEASURE_CATEGORY_INDUSTRY);
      item->set_content(absl::StrCat("發展養殖 ", id));
      item->set_cost_fen(100000);
      item->set_year(year);
    }
  });
}

v1::Event SimDevice::Resolve(const v1::SubjectRef& subject, const std::string& village,
                             const std::string& conflict_id,
                             const std::function<void(v1::ConflictResolved&)>& resolution) {
  return Make(subject, village, [&](v1::Event& e) {
    v1::ConflictResolved* r = e.mutable_conflict_resolved();
    r->set_conflict_id(conflict_id);
    resolution(*r);
  });
}

Env::Env(sync::SyncOptions options, storage::StoreOptions store_options)
    : options_(std::move(options)), store_options_(std::move(store_options)) {
  options_.clock = clock_.AsFunction();
  Open();
}

Env::~Env() {
  engine_.reset();
  store_.reset();
}

void Env::Open() {
  absl::StatusOr<std::unique_ptr<storage::EventStore>> store =
      storage::OpenEventStore(dir_.Join("store"), store_options_);
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return;
  }
  store_ = *std::move(store);
  engine_ = std::make_unique<sync::SyncEngine>(store_.get(), &policy_, &keys_, options_);
}

void Env::Reopen() {
  engine_.reset();
  store_.reset();
  Open();
}

SimDevice& Env::AddDevice(const std::string& id, const std::string& user_id, v1::Role role) {
  devices_.push_back(std::make_unique<SimDevice>(id, user_id, role, clock_.AsFunction()));
  keys_.Add(id, devices_.back()->Info());
  return *devices_.back();
}

sync::Scope Env::AllScope() {
  sync::Scope scope;
  scope.all = true;
  return scope;
}

sync::PushContext Env::Context(const SimDevice& pusher, const sync::Scope& scope) const {
  sync::PushContext context;
  context.actor = pusher.user_id();
  context.role = pusher.role();
  context.device_id = pusher.id();
  context.scope = scope;
  return context;
}

absl::StatusOr<sync::PushOutcome> Env::Push(const SimDevice& pusher,
                                            const std::vector<v1::Event>& events,
                                            const sync::Scope& scope) {
  return engine_->Push(Context(pusher, scope), SealForPush(events));
}

absl::StatusOr<sync::PushOutcome> Env::PushSigned(const SimDevice& pusher,
                                                  const std::vector<v1::SignedEvent>& events,
                                                  const sync::Scope& scope) {
  return engine_->Push(Context(pusher, scope), events);
}

std::optional<v1::Household> ReadHousehold(const storage::EventStore& store,
                                           const std::string& id) {
  return ReadProjection<v1::Household>(store, domain::keys::Household("household/" + id));
}

std::optional<v1::Conflict> ReadConflict(const storage::EventStore& store, const std::string& id) {
  return ReadProjection<v1::Conflict>(store, domain::keys::Conflict(id));
}

std::map<std::string, std::string> AllProjections(const storage::EventStore& store) {
  std::map<std::string, std::string> all;
  std::string position;
  while (true) {
    auto batch = store.ScanProjections("", position, 1000);
    if (!batch.ok()) {
      ADD_FAILURE() << batch.status();
      return all;
    }
    for (auto& [key, value] : *batch) {
      position = key;
      all.emplace(key, value);
    }
    if (batch->size() < 1000) return all;
  }
}

}  // namespace fieldsync::test
