// The v1 gRPC services of fieldsyncd and what they need from the server.
// server.cc builds the gRPC server; CreateServices builds the services.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fieldsync/v1/config.pb.h"
#include "server/directory.h"
#include "server/identity.h"
#include "server/metrics.h"
#include "server/server_state.h"
#include "storage/event_store.h"

namespace fieldsync::server {

// Borrowed pointers: each must outlive the ServiceSet.
struct ServiceDeps {
  storage::EventStore* store = nullptr;
  const v1::ServerConfig* config = nullptr;  // Defaults already applied.
  ServerState* state = nullptr;
  MetricsRegistry* metrics = nullptr;
  // The server's clock; empty = absl::Now. Tests inject one.
  Clock clock = {};
  // Where households live; null = the domain's state (NewDomainHouseholds).
  // Tests inject their own.
  const HouseholdLocator* households = nullptr;
};

// Owns the service implementations. Thread-safe once built.
class ServiceSet {
 public:
  virtual ~ServiceSet() = default;
  // The services to register with the ServerBuilder (owned by this set).
  virtual std::vector<grpc::Service*> services() = 0;
  // The admin token created on the very first start (nullopt afterwards):
  // main prints it once and writes it to a 0600 file in the data dir.
  virtual std::optional<std::string> first_admin_token() const = 0;
  // The server's identity, whose Append writes server-made events through the
  // sync engine (tests register reference data with it).
  virtual Identity& identity() = 0;
};

// Builds the services over `deps`; on a fresh store creates the first admin.
absl::StatusOr<std::unique_ptr<ServiceSet>> CreateServices(const ServiceDeps& deps);

}  // namespace fieldsync::server
