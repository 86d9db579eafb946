// MetricsHttpServer: the /metrics page of fieldsyncd, a small HTTP server
// (cpp-httplib) that renders a MetricsRegistry in the Prometheus text format.
// Any other path answers 404. It serves on its own address (metrics_listen),
// apart from gRPC, without TLS or authentication: bind it to an address only
// the monitoring system reaches.
//
// Thread-safety: Stop may be called from any thread; it is idempotent.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace fieldsync::server {

class MetricsRegistry;

class MetricsHttpServer {
 public:
  // Binds `host`:`port` (port 0 picks a free port) and serves `registry`
  // from a thread of its own. `registry` must outlive the server. Error:
  // Unavailable naming metrics_listen if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host, int port,
                                                                  const MetricsRegistry* registry);

  virtual ~MetricsHttpServer() = default;  // Stops.

  // The port actually bound.
  virtual int port() const = 0;

  // Stops serving and joins the serving thread; a scrape in progress finishes
  // first. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace fieldsync::server
