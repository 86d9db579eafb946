// FieldsyncServer: fieldsyncd's gRPC server. It opens the event store, serves
// the v1 services (SyncService, StreamService, QueryService, ReportService,
// AdminService), grpc.health.v1.Health and server reflection, over TLS when
// configured, with the call log interceptor (server/call_log.h) and the
// /metrics page (server/metrics_http.h) on its own port.
//
// Thread-safety: Start and the accessors may be called from any thread;
// Shutdown is idempotent and safe to call concurrently with serving calls.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fieldsync/v1/config.pb.h"

namespace fieldsync::server {

class MetricsRegistry;
class ServerState;

// The file in the data dir that receives the first admin token (mode 0600).
inline constexpr char kAdminTokenFileName[] = "admin-token";

class FieldsyncServer {
 public:
  // Applies the defaults to the unset fields of `config` and validates it
  // (server/config.h), creates data_dir if missing, opens the store, builds
  // the services, writes the first admin token (first start only) to
  // <data_dir>/admin-token, and starts serving gRPC on config.listen and
  // /metrics on config.metrics_listen ("off": no page; port 0: a free port).
  //
  // Tests: the default metrics_listen is the fixed 127.0.0.1:9464; set it to
  // "127.0.0.1:0" or "off" so that parallel tests do not collide.
  //
  // Errors: InvalidArgument "config: ..." for a bad config; the store's open
  // error; CreateServices' error; Unavailable naming listen or metrics_listen
  // if an address cannot be bound.
  static absl::StatusOr<std::unique_ptr<FieldsyncServer>> Start(const v1::ServerConfig& config);

  virtual ~FieldsyncServer() = default;  // Shuts down at once if still serving.

  // The gRPC port actually bound (useful with port 0).
  virtual int port() const = 0;
  // The /metrics port actually bound; 0 when metrics_listen is "off".
  virtual int metrics_port() const = 0;
  // The effective config (defaults applied), as the services see it.
  virtual const v1::ServerConfig& config() const = 0;
  // The admin token created by this start (first start of a store only),
  // already written to <data_dir>/admin-token; nullopt otherwise.
  virtual std::optional<std::string> first_admin_token() const = 0;
  // The drain state shared with the services; lives as long as the server.
  virtual ServerState* state() = 0;
  // The registry of the /metrics page; lives as long as the server.
  virtual MetricsRegistry* metrics() = 0;

  // Graceful shutdown: health turns NOT_SERVING, the services refuse new
  // calls (ServerState::BeginDrain), the calls in flight get until `deadline`
  // to finish, then gRPC stops (cancelling what is left, e.g. Health.Watch
  // streams), the /metrics page stops and the store is flushed and closed.
  // Blocks until done. Idempotent.
  virtual void Shutdown(absl::Time deadline) = 0;

  // Blocks until the gRPC server has stopped (Shutdown has run or is ending).
  virtual void Wait() = 0;
};

}  // namespace fieldsync::server
