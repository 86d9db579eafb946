// ServiceHarness: the v1 services (server/services.h) served by a real gRPC
// server on 127.0.0.1:0 over a store in a temp directory, with an injected
// clock, plus health and reflection as fieldsyncd serves them. Clients talk
// to it through real channels. TestDevice is the client side of a phone or
// tablet: a real Ed25519 key pair (libsodium) that signs its events.
//
// Not thread-safe itself (nor is TestDevice); FakeClock is.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fieldsync/v1/admin_service.grpc.pb.h"
#include "fieldsync/v1/config.pb.h"
#include "fieldsync/v1/event.pb.h"
#include "fieldsync/v1/sync_service.grpc.pb.h"
#include "server/directory.h"
#include "server/server_state.h"
#include "server/services.h"
#include "storage/event_store.h"
#include "tests/sync/test_signing.h"

namespace fieldsync::testing {

using testsig::Decoded;
using testsig::EventOf;
using testsig::SealForPush;
using testsig::SetTestSignature;
using testsig::TestEventBytes;
using testsig::TestSignature;

// A clock tests move by hand. Thread-safe.
class FakeClock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1709254800))  // 2024-03-01 09:00 CST.
      : now_(start) {}
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration by) {
    absl::MutexLock lock(&mu_);
    now_ += by;
  }
  server::Clock AsClock() {
    return [this] { return Now(); };
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

class ServiceHarness {
 public:
  // Serves the services over the store in `data_dir` (created if missing).
  // `config` as fieldsyncd would pass it (data_dir is set from `data_dir`;
  // limits.max_message_bytes, if set, bounds gRPC messages as in fieldsyncd).
  // A restart is a new harness on the same data_dir once the old one is gone.
  static absl::StatusOr<std::unique_ptr<ServiceHarness>> Start(const std::string& data_dir,
                                                               v1::ServerConfig config = {});
  ~ServiceHarness();

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // "127.0.0.1:<port>", for a test that needs a channel of its own (other
  // channel arguments).
  const std::string& address() const { return address_; }
  // The first admin's token when this start created it; empty otherwise.
  const std::string& admin_token() const { return admin_token_; }
  storage::EventStore& store() { return *store_; }
  server::ServerState& state() { return state_; }
  server::MetricsRegistry& metrics() { return metrics_; }
  FakeClock& clock() { return clock_; }

  // Registers a household in the domain's state as a pushed
  // HouseholdRegistered would, without a device of the test's: a server-made
  // event through the sync engine's entry (Identity::Append), folded through
  // the domain's merge and the subject index. Links, scope checks and pull
  // snapshots then find it.
  absl::Status RegisterHousehold(const std::string& id, const std::string& number,
                                 const std::string& village_code);

  // A client context with a deadline and, unless empty, the bearer token.
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token);

  // Every event of the log, decoded, in offset order.
  std::vector<sync::LoggedEvent> ReadLog();

 private:
  ServiceHarness() = default;

  FakeClock clock_;
  server::ServerState state_;
  server::MetricsRegistry metrics_;
  v1::ServerConfig config_;
  std::unique_ptr<storage::EventStore> store_;
  std::unique_ptr<server::ServiceSet> services_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::string address_;
  std::string admin_token_;
};

// Client-side helpers over the admin and sync stubs (fatal test failures on
// error are left to the caller: they return the status).
struct EnrolledDevice {
  std::string device_id;
  std::string token;
};

// Creates (or replaces) a user through AdminService.UpsertUser.
absl::StatusOr<v1::User> UpsertUser(grpc::Channel& channel, const std::string& admin_token,
                                    const v1::User& user);
// Issues a code for `user_id` and enrolls a new device with it.
absl::StatusOr<EnrolledDevice> EnrollDevice(grpc::Channel& channel, const std::string& admin_token,
                                            const std::string& user_id);
// As above, enrolling `public_key` (32 bytes of Ed25519).
absl::StatusOr<EnrolledDevice> EnrollDevice(grpc::Channel& channel, const std::string& admin_token,
                                            const std::string& user_id,
                                            const std::string& public_key);
// An absl::Status from a grpc::Status, for messages in test failures.
absl::Status FromGrpc(const grpc::Status& status);

// A phone or tablet as the server sees it from the outside: its own Ed25519
// key pair, the id and token enrollment gave it, its device_seq counter and
// hybrid logical clock over `clock`. Makes signed events.
class TestDevice {
 public:
  explicit TestDevice(std::function<absl::Time()> clock);

  // Enrolls this device's key for `user_id` (AdminService code, then Enroll).
  absl::Status Enroll(grpc::Channel& channel, const std::string& admin_token,
                      const std::string& user_id);

  const std::string& id() const { return id_; }
  const std::string& token() const { return token_; }
  const std::string& user_id() const { return user_id_; }
  const std::string& public_key() const { return public_key_; }
  // The device_seq the next Make uses; tests rewind or skip it.
  uint64_t next_seq() const { return next_seq_; }
  void set_next_seq(uint64_t seq) { next_seq_ = seq; }

  // A signed event: a fresh event_id, the next device_seq, a ticked HLC,
  // device_time, subject and area; `body` fills the body before signing.
  v1::Event Make(const v1::SubjectRef& subject, const std::string& area_code,
                 const std::function<void(v1::Event&)>& body);
  // Signs `event` again (after a test changed it); the signature rides with
  // the event until a push seals it (tests/sync/test_signing.h).
  void Sign(v1::Event& event) const;
  // The SignedEvent this device pushes for `event` (SealForPush).
  v1::SignedEvent Seal(const v1::Event& event) const { return SealForPush(event); }
  // `bytes` as they are (any encoding, even not an Event), signed with this
  // device's key: what another protobuf library's client would send.
  v1::SignedEvent SignBytes(std::string bytes) const;
  // Folds a server HLC in, as after a pull.
  void Observe(uint64_t hlc) { hlc_ = std::max(hlc_, hlc); }

  // Body makers (each signed, with the next device_seq).
  v1::Event Register(const std::string& household_id, const std::string& village,
                     const std::string& number);
  v1::Event SetField(const std::string& household_id, const std::string& village,
                     const std::string& field, const v1::FieldValue& value, uint64_t base);
  v1::Event Visit(const std::string& household_id, const std::string& village,
                  const std::string& notes = "走訪，了解生產生活情況");
  v1::Event Propose(const std::string& household_id, const std::string& village,
                    v1::HouseholdStatus from, v1::HouseholdStatus to);
  v1::Event Confirm(const std::string& household_id, const std::string& village,
                    const std::string& proposal_id, v1::HouseholdStatus from,
                    v1::HouseholdStatus to, v1::ReviewStage stage);

 private:
  std::function<absl::Time()> clock_;
  std::string public_key_;
  std::string secret_key_;
  std::string id_;
  std::string token_;
  std::string user_id_;
  uint64_t next_seq_ = 1;
  uint64_t hlc_ = 0;
};

// A lowercase random RFC 4122 version 4 UUID.
std::string RandomUuid();
// A resident ID number with a valid GB 11643 check character, from `n`.
std::string ResidentId(uint64_t n);
v1::SubjectRef Household(const std::string& id);
v1::FieldValue Text(const std::string& s);

}  // namespace fieldsync::testing
