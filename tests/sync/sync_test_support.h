// Helpers for the sync and domain tests: an injected clock, an in-memory
// DeviceKeys, simulated devices with real Ed25519 keys (libsodium) that make
// and sign events, body builders, and an Env that owns a real RocksDB event
// store in a temporary directory with a SyncEngine over it (reopenable, to
// test restarts).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "domain/shuanglian_policy.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/sync_service.pb.h"
#include "gtest/gtest.h"
#include "storage/event_store.h"
#include "sync/device_keys.h"
#include "sync/scope.h"
#include "sync/sync_engine.h"
#include "tests/storage/test_util.h"
#include "tests/sync/test_signing.h"

namespace fieldsync::test {

using testsig::Decoded;
using testsig::EventOf;
using testsig::SealForPush;
using testsig::SetTestSignature;
using testsig::TestEventBytes;
using testsig::TestSignature;

using storage::test::ScopedTempDir;

// 2024-06-01 10:00 China Standard Time.
absl::Time DefaultStart();

// A settable clock; thread-safe.
class FakeClock {
 public:
  explicit FakeClock(absl::Time start = DefaultStart()) : now_(start) {}
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  std::function<absl::Time()> AsFunction() {
    return [this] { return Now(); };
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

// DeviceKeys over a map; thread-safe.
class MemoryDeviceKeys : public sync::DeviceKeys {
 public:
  void Add(const std::string& device_id, sync::DeviceInfo info);
  void Revoke(const std::string& device_id);
  absl::StatusOr<std::optional<sync::DeviceInfo>> Lookup(std::string_view device_id) const override;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, sync::DeviceInfo, std::less<>> devices_ ABSL_GUARDED_BY(mu_);
};

// A lowercase RFC 4122 (version 4 layout) UUID from a process-wide counter
// and a random salt; thread-safe.
std::string NewUuid();
// A valid resident ID number derived from `n` (GB 11643 check character).
std::string IdNumber(uint64_t n);

v1::SubjectRef HouseholdRef(const std::string& id);
v1::SubjectRef VillageRef(const std::string& code);
v1::FieldValue Str(const std::string& s);
v1::FieldValue Int(int64_t i);

// A phone or tablet: its own Ed25519 key pair, device_seq counter and HLC.
// Not thread-safe.
class SimDevice {
 public:
  SimDevice(std::string id, std::string user_id, v1::Role role, std::function<absl::Time()> clock);

  const std::string& id() const { return id_; }
  const std::string& user_id() const { return user_id_; }
  v1::Role role() const { return role_; }
  sync::DeviceInfo Info() const;
  // The next device_seq Make will use.
  uint64_t next_seq() const { return next_seq_; }

  // A signed event: fresh event_id, the next device_seq, a ticked HLC,
  // device_time, subject and area; `body` fills the body before signing.
  v1::Event Make(const v1::SubjectRef& subject, const std::string& area_code,
                 const std::function<void(v1::Event&)>& body);
  // Signs `event` with this device's key (after a test changed it); the
  // signature rides with the event until Env::Push seals it
  // (tests/sync/test_signing.h).
  void Sign(v1::Event& event) const;
  // Folds a server HLC in (as a device does after a pull).
  void Observe(uint64_t hlc);

  // Body makers (all signed, next seq).
  v1::Event Register(const std::string& household_id, const std::string& village,
                     const std::string& number);
  v1::Event SetField(const std::string& household_id, const std::string& village,
                     const std::string& field, const v1::FieldValue& value, uint64_t base);
  v1::Event Visit(const v1::SubjectRef& subject, const std::string& village,
                  absl::Duration length = absl::Hours(1));
  v1::Event Propose(const std::string& household_id, const std::string& village,
                    v1::HouseholdStatus from, v1::HouseholdStatus to, uint64_t base = 0);
  v1::Event Confirm(const std::string& household_id, const std::string& village,
                    const std::string& proposal_id, v1::HouseholdStatus from,
                    v1::HouseholdStatus to, v1::ReviewStage stage,
                    v1::ReviewDecision decision = v1::REVIEW_DECISION_APPROVE, uint64_t base = 0);
  v1::Event AddMember(const std::string& household_id, const std::string& village,
                      const std::string& member_id, const std::string& name);
  v1::Event UpdateMember(const std::string& household_id, const std::string& village,
                         const std::string& member_id, const std::string& field,
                         const v1::FieldValue& value, uint64_t base);
  v1::Event RevisePlan(const std::string& household_id, const std::string& village, int year,
                       uint64_t base, const std::vector<std::string>& item_ids);
  v1::Event Resolve(const v1::SubjectRef& subject, const std::string& village,
                    const std::string& conflict_id,
                    const std::function<void(v1::ConflictResolved&)>& resolution);

 private:
  std::string id_;
  std::string user_id_;
  v1::Role role_;
  std::function<absl::Time()> clock_;
  std::string public_key_;
  std::string secret_key_;
  uint64_t next_seq_ = 1;
  uint64_t hlc_ = 0;
};

// A real store in a temporary directory and an engine over it.
class Env {
 public:
  explicit Env(sync::SyncOptions options = {}, storage::StoreOptions store_options = {});
  ~Env();

  // Closes the engine and the store and opens them again (a restart).
  void Reopen();
  // Enrolls a simulated device (owned by the Env).
  SimDevice& AddDevice(const std::string& id, const std::string& user_id, v1::Role role);

  // Pushes as `pusher` (the token's device and user) with `scope`: each event
  // sealed as its device signed it (SealForPush).
  absl::StatusOr<sync::PushOutcome> Push(const SimDevice& pusher,
                                         const std::vector<v1::Event>& events,
                                         const sync::Scope& scope = AllScope());
  // The same with SignedEvents as they are (tests of the bytes themselves).
  absl::StatusOr<sync::PushOutcome> PushSigned(const SimDevice& pusher,
                                               const std::vector<v1::SignedEvent>& events,
                                               const sync::Scope& scope = AllScope());
  sync::PushContext Context(const SimDevice& pusher, const sync::Scope& scope) const;

  static sync::Scope AllScope();

  storage::EventStore& store() { return *store_; }
  sync::SyncEngine& engine() { return *engine_; }
  MemoryDeviceKeys& keys() { return keys_; }
  FakeClock& clock() { return clock_; }
  const domain::ShuanglianPolicy& policy() const { return policy_; }

 private:
  void Open();

  ScopedTempDir dir_;
  FakeClock clock_;
  MemoryDeviceKeys keys_;
  domain::ShuanglianPolicy policy_;
  sync::SyncOptions options_;
  storage::StoreOptions store_options_;
  std::unique_ptr<storage::EventStore> store_;
  std::unique_ptr<sync::SyncEngine> engine_;
  std::vector<std::unique_ptr<SimDevice>> devices_;
};

// Reads a projection message; nullopt if absent.
template <typename M>
std::optional<M> ReadProjection(const storage::EventStore& store, const std::string& key) {
  absl::StatusOr<std::optional<std::string>> bytes = store.GetProjection(key);
  if (!bytes.ok() || !bytes->has_value()) return std::nullopt;
  M message;
  if (!message.ParseFromString(**bytes)) return std::nullopt;
  return message;
}

// The household projection of `id`.
std::optional<v1::Household> ReadHousehold(const storage::EventStore& store, const std::string& id);
std::optional<v1::Conflict> ReadConflict(const storage::EventStore& store, const std::string& id);

// Every projection key and value (a fingerprint of all state).
std::map<std::string, std::string> AllProjections(const storage::EventStore& store);

}  // namespace fieldsync::test
