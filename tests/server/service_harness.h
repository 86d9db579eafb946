// ServiceHarness: the v1 services (server/services.h) served by a real gRPC
// server on 127.0.0.1:0 over a store in a temp directory, with an injected
// clock, plus health and reflection as fieldsyncd serves them. Clients talk
// to it through real channels.
//
// Not thread-safe itself; FakeClock is.
#pragma once

#include <grpcpp/grpcpp.h>

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

namespace fieldsync::testing {

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
  // `config` as fieldsyncd would pass it (data_dir is set from `data_dir`).
  static absl::StatusOr<std::unique_ptr<ServiceHarness>> Start(const std::string& data_dir,
                                                               v1::ServerConfig config = {});
  ~ServiceHarness();

  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // The first admin's token when this start created it; empty otherwise.
  const std::string& admin_token() const { return admin_token_; }
  storage::EventStore& store() { return *store_; }
  server::ServerState& state() { return state_; }
  FakeClock& clock() { return clock_; }

  // Registers a household in the domain's state as a pushed
  // HouseholdRegistered would (through the domain's merge), until Push is
  // served: links and scope checks then find it.
  absl::Status RegisterHousehold(const std::string& id, const std::string& number,
                                 const std::string& village_code);
  // Appends `event` (subject, area_code and body set) as a device's pushed
  // event folded through the domain's merge, attributed to `actor`.
  absl::Status AppendThroughDomain(v1::Event event, const std::string& actor, v1::Role role);

  // A client context with a deadline and, unless empty, the bearer token.
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& token);

  // Every event of the log, decoded, in offset order.
  std::vector<v1::StoredEvent> ReadLog();

 private:
  ServiceHarness() = default;

  FakeClock clock_;
  uint64_t registry_seq_ = 0;
  server::ServerState state_;
  server::MetricsRegistry metrics_;
  v1::ServerConfig config_;
  std::unique_ptr<storage::EventStore> store_;
  std::unique_ptr<server::ServiceSet> services_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
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
// An absl::Status from a grpc::Status, for messages in test failures.
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace fieldsync::testing
